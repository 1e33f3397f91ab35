/* redact.c: secrets out of tally's config (see redact.h). */
#include "redact.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/config.h"
#include "core/assert.h"

const char *tl_redact_why_name(unsigned why) {
    switch (why) {
        case TL_REDACT_SCHEMA:
            return "schema_secret";
        case TL_REDACT_NAME:
            return "key_looks_secret";
        case TL_REDACT_URL:
            return "url_credentials";
        case TL_REDACT_DEEP:
            return "too_deep";
    }
    return "?";
}

bool tl_redact_url_userinfo(const char *s, size_t *start, size_t *len) {
    const char *sep = strstr(s, "://");
    if (sep == NULL || sep == s)
        return false;
    /* a scheme: a letter, then letters, digits, '+', '-', '.' */
    for (const char *p = s; p < sep; p++) {
        char ch = *p;
        bool letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        bool other = (ch >= '0' && ch <= '9') || ch == '+' || ch == '-' || ch == '.';
        if (!(letter || (p > s && other)))
            return false;
    }
    const char *auth = sep + 3;
    size_t n = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (auth[i] == '@')
            at = auth + i; /* the last '@' of the authority ends the userinfo */
    if (at == NULL)
        return false;
    *start = (size_t)(auth - s);
    *len = (size_t)(at - auth);
    return true;
}

typedef struct frame {
    cJSON *node; /* an object or an array */
    cJSON *next; /* its next child to look at */
    int index;   /* that child's index */
    bool secret; /* under a member whose name looks secret */
    uint8_t why;
    char path[TL_REDACT_PATH_MAX];
} frame;

typedef struct walk {
    tl_redact_out *out;
    const tl_cfg_key *keys;
    size_t nkeys;
    bool nomem;
} walk;

static bool schema_secret(const walk *w, const char *path) {
    for (size_t i = 0; i < w->nkeys; i++)
        if (w->keys[i].secret && strcmp(w->keys[i].path, path) == 0)
            return true;
    return false;
}

static void note(walk *w, const char *path, uint8_t why) {
    tl_redact_out *o = w->out;
    if (o->count == TL_REDACT_MAX_PATHS) {
        o->dropped++;
        return;
    }
    snprintf(o->paths[o->count].path, sizeof o->paths[o->count].path, "%s", path);
    o->paths[o->count].why = why;
    o->count++;
}

/* Replaces item (a member of parent) by a string, keeping its key. */
static bool replace_with(walk *w, cJSON *parent, cJSON *item, const char *text) {
    cJSON *rep = cJSON_CreateString(text);
    if (rep == NULL) {
        w->nomem = true;
        return false;
    }
    rep->string = item->string;
    rep->type |= item->type & cJSON_StringIsConst;
    item->string = NULL;
    item->type &= ~cJSON_StringIsConst;
    if (!cJSON_ReplaceItemViaPointer(parent, item, rep)) {
        /* cannot happen: item is parent's child; keep the tree whole */
        item->string = rep->string;
        rep->string = NULL;
        cJSON_Delete(rep);
        w->nomem = true;
        return false;
    }
    return true;
}

/* The child's key path; a path longer than the buffer is cut (it only names
 * where a redaction happened). */
static void child_path(char *out, size_t cap, const char *parent, const cJSON *parent_node,
                       const cJSON *child, int index) {
    int n;
    if (cJSON_IsArray(parent_node))
        n = snprintf(out, cap, "%s[%d]", parent, index);
    else if (parent[0] == '\0')
        n = snprintf(out, cap, "%s", child->string != NULL ? child->string : "?");
    else
        n = snprintf(out, cap, "%s.%s", parent, child->string != NULL ? child->string : "?");
    if (n < 0)
        out[0] = '\0';
}

static void redact_url(walk *w, cJSON *parent, cJSON *item, const char *path) {
    size_t start, len;
    if (!cJSON_IsString(item) || item->valuestring == NULL ||
        !tl_redact_url_userinfo(item->valuestring, &start, &len))
        return;
    const char *s = item->valuestring;
    size_t n = strlen(s);
    char *buf = malloc(n + sizeof TL_REDACTED + 1);
    if (buf == NULL) {
        w->nomem = true;
        return;
    }
    memcpy(buf, s, start);
    memcpy(buf + start, TL_REDACTED, sizeof TL_REDACTED - 1);
    memcpy(buf + start + sizeof TL_REDACTED - 1, s + start + len, n - start - len + 1);
    if (replace_with(w, parent, item, buf))
        note(w, path, TL_REDACT_URL);
    free(buf);
}

int tl_redact_config(const char *json, size_t len, tl_redact_out *out, char *err, size_t cap) {
    memset(out, 0, sizeof *out);
    if (len > TL_REDACT_INPUT_MAX) {
        snprintf(err, cap, "config larger than %u bytes", TL_REDACT_INPUT_MAX);
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (root == NULL) {
        snprintf(err, cap, "config is not valid JSON");
        return -1;
    }
    walk w = {.out = out};
    w.nkeys = tl_config_keys(&w.keys);
    out->paths = calloc(TL_REDACT_MAX_PATHS, sizeof *out->paths);
    frame *stack = calloc(TL_REDACT_DEPTH, sizeof *stack);
    if (out->paths == NULL || stack == NULL) {
        free(stack);
        cJSON_Delete(root);
        tl_redact_free(out);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    uint32_t depth = 0;
    if ((cJSON_IsObject(root) || cJSON_IsArray(root)) && root->child != NULL) {
        stack[0].node = root;
        stack[0].next = root->child;
        stack[0].path[0] = '\0';
        depth = 1;
    }
    /* Depth first with a stack of open containers (at most TL_REDACT_DEPTH:
     * deeper ones are replaced whole). Each step looks at one child of the
     * innermost open container, or closes it: every node once. */
    while (depth > 0 && !w.nomem) {
        frame *f = &stack[depth - 1];
        cJSON *c = f->next;
        if (c == NULL) {
            depth--;
            continue;
        }
        f->next = c->next;
        int index = f->index++;
        char path[TL_REDACT_PATH_MAX];
        child_path(path, sizeof path, f->path, f->node, c, index);
        bool secret = f->secret;
        uint8_t why = f->why;
        /* The schema names a secret first; then any name that looks secret. */
        if (c->string != NULL && schema_secret(&w, path)) {
            secret = true;
            why = TL_REDACT_SCHEMA;
        } else if (!secret && c->string != NULL && tl_config_key_looks_secret(c->string)) {
            secret = true;
            why = TL_REDACT_NAME;
        }
        bool container = cJSON_IsObject(c) || cJSON_IsArray(c);
        if (container && c->child != NULL) {
            if (depth == TL_REDACT_DEPTH) {
                if (replace_with(&w, f->node, c, TL_REDACTED))
                    note(&w, path, TL_REDACT_DEEP);
                continue;
            }
            frame *nf = &stack[depth++];
            nf->node = c;
            nf->next = c->child;
            nf->index = 0;
            nf->secret = secret;
            nf->why = why;
            snprintf(nf->path, sizeof nf->path, "%s", path);
            continue;
        }
        if (secret) {
            if (replace_with(&w, f->node, c, TL_REDACTED))
                note(&w, path, why);
            continue;
        }
        redact_url(&w, f->node, c, path);
    }
    free(stack);
    if (w.nomem) {
        cJSON_Delete(root);
        tl_redact_free(out);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    cJSON *list = cJSON_CreateObject();
    cJSON *arr = list != NULL ? cJSON_AddArrayToObject(list, "redacted") : NULL;
    if (list != NULL) {
        cJSON_AddStringToObject(list, "replacement", TL_REDACTED);
        cJSON_AddNumberToObject(list, "count", out->count + out->dropped);
        cJSON_AddNumberToObject(list, "not_listed", out->dropped);
    }
    for (uint32_t i = 0; arr != NULL && i < out->count; i++) {
        cJSON *e = cJSON_CreateObject();
        if (e == NULL)
            break;
        cJSON_AddStringToObject(e, "path", out->paths[i].path);
        cJSON_AddStringToObject(e, "rule", tl_redact_why_name(out->paths[i].why));
        cJSON_AddItemToArray(arr, e);
    }
    char *ltext = list != NULL ? cJSON_Print(list) : NULL;
    cJSON_Delete(list);
    if (text == NULL || ltext == NULL) {
        cJSON_free(text);
        cJSON_free(ltext);
        tl_redact_free(out);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    /* Into plain malloc'd memory the caller frees with tl_redact_free. */
    out->json_len = strlen(text);
    out->list_len = strlen(ltext);
    out->json = malloc(out->json_len + 2);
    out->list = malloc(out->list_len + 2);
    if (out->json != NULL && out->list != NULL) {
        memcpy(out->json, text, out->json_len);
        out->json[out->json_len++] = '\n';
        out->json[out->json_len] = '\0';
        memcpy(out->list, ltext, out->list_len);
        out->list[out->list_len++] = '\n';
        out->list[out->list_len] = '\0';
    }
    cJSON_free(text);
    cJSON_free(ltext);
    if (out->json == NULL || out->list == NULL) {
        tl_redact_free(out);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    return 0;
}

void tl_redact_free(tl_redact_out *out) {
    free(out->json);
    free(out->list);
    free(out->paths);
    memset(out, 0, sizeof *out);
}
