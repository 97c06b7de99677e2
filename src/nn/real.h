/* Instantiating a reference kernel for float and for double.
 *
 * A kernel file `foo.c` holds its generic body in `foo_impl.h`, written in
 * terms of `real` (the element type), `acc` (the accumulator type: always
 * double) and FN(name) (appends `_f64` for the double instantiation), and
 * includes it twice:
 *
 *     #define MLOC_REAL_F32
 *     #include "foo_impl.h"
 *     #define MLOC_REAL_F64
 *     #include "foo_impl.h"
 *
 * The float instantiation is what the reference backend runs; the double one
 * is what the finite-difference gradient checks differentiate. */
#undef real
#undef FN
#undef FN_
#undef acc
#if defined(MLOC_REAL_F64)
#define real double
#define FN_(name) name##_f64
#undef MLOC_REAL_F64
#elif defined(MLOC_REAL_F32)
#define real float
#define FN_(name) name
#undef MLOC_REAL_F32
#else
#error "define MLOC_REAL_F32 or MLOC_REAL_F64 before including an _impl.h"
#endif
#define FN(name) FN_(name)
#define acc double
