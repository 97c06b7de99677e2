/* memloc sslmem: per-point SSLMem at the encoder output (SPEC.md sections
 * 2-3). The command shares its options and code with memloc layermem
 * (cmd_layermem.c), restricted to the last tap. */
#include "cmd_metrics.h"

int cmd_sslmem(int argc, char **argv) { return metrics_cli_layermem(argc, argv, 0); }
