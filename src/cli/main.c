/* memloc: command dispatch. `memloc help <cmd>` equals `memloc <cmd> --help`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "memloc/context.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

#define CMD(name, fn, summary) int fn(int argc, char **argv);
#include "commands.def"
#undef CMD

static const command commands[] = {
#define CMD(name, fn, summary) {#name, fn, summary},
#include "commands.def"
#undef CMD
    {NULL, NULL, NULL},
};

static void usage(FILE *out) {
    fprintf(out,
            "memloc %s: localize memorization in self-supervised vision encoders\n\n"
            "usage: memloc <command> [options]\n\ncommands:\n",
            MLOC_VERSION);
    for (const command *c = commands; c->name; c++) fprintf(out, "  %-14s %s\n", c->name, c->summary);
    fprintf(out, "\n'memloc <command> --help' (or 'memloc help <command>') documents each command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 64;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        if (argc > 2 && (strcmp(argv[2], "--verbose") == 0 || strcmp(argv[2], "-v") == 0)) {
            char info[1024];
            mloc_build_info(info, sizeof info);
            fputs(info, stdout);
        } else {
            printf("memloc %s\n", MLOC_VERSION);
        }
        return 0;
    }
    int help = 0;
    if (strcmp(name, "help") == 0) {
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        name = argv[2];
        help = 1;
    }
    for (const command *c = commands; c->name; c++) {
        if (strcmp(c->name, name) != 0) continue;
        if (help) {
            char *hargv[] = {(char *)name, "--help", NULL};
            return c->run(2, hargv);
        }
        return c->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "memloc: '%s' is not a command (see 'memloc --help')\n", name);
    return 64;
}
