#include "memloc/status.h"

static const struct {
    const char *name;
    int code;
    const char *text;
} table[] = {
#define MLOC_X(name, code, text) {#name, code, text},
    MLOC_STATUS_LIST(MLOC_X)
#undef MLOC_X
};

const char *mloc_status_name(mloc_status st) {
    if ((unsigned)st >= MLOC_STATUS_COUNT) return "UNKNOWN";
    return table[st].name;
}

const char *mloc_status_text(mloc_status st) {
    if ((unsigned)st >= MLOC_STATUS_COUNT) return "unknown status";
    return table[st].text;
}

int mloc_status_exit_code(mloc_status st) {
    if ((unsigned)st >= MLOC_STATUS_COUNT) return 70;
    return table[st].code;
}
