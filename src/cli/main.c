#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) { printf("memloc %s\n", MLOC_VERSION); return 0; }
    fprintf(stderr, "memloc: no command\n");
    return 64;
}
