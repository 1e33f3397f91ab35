/* redact.h: tally's config with its secrets replaced, for forensic bundles.
 *
 * A value is replaced by the string "<redacted>" when:
 *   - its key path is a secret in the config schema (tl_config_keys(),
 *     `secret`: keys, token files, signing keys), or
 *   - its member name looks secret (tl_config_key_looks_secret(): key,
 *     token, password, passwd, mac, secret), at any depth, comments ("#...")
 *     included; everything under such a member is replaced leaf by leaf, or
 *   - it sits deeper than TL_REDACT_DEPTH (not inspected: replaced whole).
 * A string holding a URL with credentials (scheme://user:pass@host) keeps
 * its scheme and host; the credentials become "<redacted>".
 *
 * The list of what was replaced names key paths ("keys.sidecar",
 * "peer.peers[0].key_file") and the rule, never a value.
 *
 * No recursion: the walk keeps its own stack of at most TL_REDACT_DEPTH.
 */
#ifndef TL_REDACT_H
#define TL_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TL_REDACT_DEPTH     32u
#define TL_REDACT_PATH_MAX  256u
#define TL_REDACT_MAX_PATHS 1024u
#define TL_REDACT_INPUT_MAX (1u << 20)
#define TL_REDACTED         "<redacted>"

enum tl_redact_why {
    TL_REDACT_SCHEMA = 0, /* "schema_secret" */
    TL_REDACT_NAME,       /* "key_looks_secret" */
    TL_REDACT_URL,        /* "url_credentials" */
    TL_REDACT_DEEP,       /* "too_deep" */
};
const char *tl_redact_why_name(unsigned why);

typedef struct tl_redaction {
    char path[TL_REDACT_PATH_MAX];
    uint8_t why; /* enum tl_redact_why */
} tl_redaction;

typedef struct tl_redact_out {
    char *json; /* the redacted config, pretty-printed (malloc'd) */
    size_t json_len;
    char *list; /* redactions.json (malloc'd) */
    size_t list_len;
    tl_redaction *paths; /* malloc'd, count entries */
    uint32_t count;
    uint32_t dropped; /* redactions beyond TL_REDACT_MAX_PATHS (still redacted, not listed) */
} tl_redact_out;

/* Redacts a config text. Returns 0, or -1 with err set (not JSON, too
 * large, out of memory); then nothing of the input may be used. */
int tl_redact_config(const char *json, size_t len, tl_redact_out *out, char *err, size_t cap);
void tl_redact_free(tl_redact_out *out);

/* True when s holds "scheme://userinfo@..."; *start and *len locate the
 * userinfo. */
bool tl_redact_url_userinfo(const char *s, size_t *start, size_t *len);

#endif
