/* What this build and this machine run on, for `memloc --version --verbose`
 * and run manifests (FORMATS.md 5: build features, BLAS, oneDNN ISA). */
#include <stdio.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "memloc/context.h"

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

void mloc_build_info(char *buf, size_t size) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, size,
             "memloc %s (C11, %s)\n"
             "oneDNN %d.%d.%d, CPU runtime OpenMP, effective ISA %s\n"
             "GEMM: oneDNN dnnl_sgemm (memloc does not link OpenBLAS, so its CPU misdetection cannot slow it)\n"
             "backends: oneDNN (default), reference C kernels\n"
             "libraries: jansson, libyaml, libarchive, libjpeg-turbo, libpng, zlib, libcurl\n",
             MLOC_VERSION,
#ifdef __OPTIMIZE__
             "optimized",
#else
             "debug",
#endif
             v->major, v->minor, v->patch, isa_name(dnnl_get_effective_cpu_isa()));
}
