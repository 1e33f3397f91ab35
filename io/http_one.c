/* http_one.c: see http_one.h. */
#include "http_one.h"

#include <string.h>

size_t tl_http_body_write(char *p, size_t size, size_t n, void *arg) {
    tl_http_body *b = arg;
    size_t bytes = size * n;
    if (bytes > b->cap - b->len) {
        b->too_large = true;
        return 0; /* CURLE_WRITE_ERROR: the transfer ends */
    }
    memcpy(b->buf + b->len, p, bytes);
    b->len += bytes;
    return bytes;
}

bool tl_http_one_done(CURLM *multi, CURL *easy, CURLcode *rc) {
    int running = 0;
    (void)curl_multi_perform(multi, &running);
    int left = 0;
    CURLMsg *m;
    bool done = false;
    /* Bounded: one easy handle, so at most one message per transfer. */
    while ((m = curl_multi_info_read(multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == easy) {
            done = true;
            *rc = m->data.result;
        }
    }
    if (done)
        curl_multi_remove_handle(multi, easy);
    return done;
}
