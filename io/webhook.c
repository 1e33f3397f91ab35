/* webhook.c: alert delivery (see webhook.h). */
#include "webhook.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert.h"

typedef struct wh_msg {
    uint32_t len;
    char body[TL_WEBHOOK_BODY_MAX];
} wh_msg;

typedef struct wh_url {
    CURL *easy;
    char url[512];
    bool busy;
    uint64_t next;     /* absolute index of the next message to deliver */
    uint64_t cur;      /* busy: the message in flight */
    uint32_t attempts; /* of the message at `next` */
    uint64_t next_try_ns;
    char send[TL_WEBHOOK_BODY_MAX]; /* the body in flight (the FIFO may drop it) */
} wh_url;

struct tl_webhook {
    CURLM *multi;
    struct curl_slist *headers;
    wh_url urls[TL_WEBHOOK_URLS_MAX];
    uint32_t url_count;
    wh_msg *msgs;
    uint32_t queue;
    uint64_t head; /* the oldest message kept */
    uint64_t tail; /* the next index posted */
    uint64_t timeout_ms;
    uint64_t backoff_min_ns;
    uint64_t backoff_max_ns;
    uint64_t now_ns;
    tl_webhook_stats st;
};

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The body sink: webhook replies are read and thrown away. */
static size_t discard(char *p, size_t size, size_t n, void *arg) {
    (void)p;
    (void)arg;
    return size * n;
}

int tl_webhook_open(tl_webhook **out, const tl_webhook_cfg *cfg, char *err, size_t err_cap) {
    *out = NULL;
    if (cfg->url_count == 0 || cfg->url_count > TL_WEBHOOK_URLS_MAX || cfg->queue == 0 ||
        cfg->queue > TL_WEBHOOK_QUEUE_MAX || cfg->timeout_ms == 0) {
        snprintf(err, err_cap, "webhooks: 1..%u urls, queue 1..%u, timeout_ms >= 1",
                 TL_WEBHOOK_URLS_MAX, TL_WEBHOOK_QUEUE_MAX);
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, err_cap, "webhooks: libcurl would not start");
        return -1;
    }
    tl_webhook *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(err, err_cap, "webhooks: out of memory");
        return -1;
    }
    w->queue = cfg->queue;
    w->msgs = calloc(cfg->queue, sizeof *w->msgs);
    w->multi = curl_multi_init();
    w->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (w->msgs == NULL || w->multi == NULL || w->headers == NULL) {
        snprintf(err, err_cap, "webhooks: out of memory (queue %u)", cfg->queue);
        tl_webhook_close(w);
        return -1;
    }
    w->timeout_ms = cfg->timeout_ms;
    w->backoff_min_ns = (cfg->backoff_min_ms != 0 ? cfg->backoff_min_ms : 100) * 1000000ull;
    w->backoff_max_ns = (cfg->backoff_max_ms != 0 ? cfg->backoff_max_ms : 10000) * 1000000ull;
    long t = cfg->timeout_ms > 0x7fffffff ? 0x7fffffff : (long)cfg->timeout_ms;
    bool ok = curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)cfg->url_count) == CURLM_OK;
    for (uint32_t i = 0; ok && i < cfg->url_count; i++) {
        wh_url *u = &w->urls[i];
        const char *url = cfg->urls[i];
        if (url == NULL || strlen(url) >= sizeof u->url ||
            (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
            snprintf(err, err_cap, "webhooks.urls[%u]: expected an http(s) URL", i);
            tl_webhook_close(w);
            return -1;
        }
        snprintf(u->url, sizeof u->url, "%s", url);
        u->easy = curl_easy_init();
        w->url_count = i + 1;
        CURL *e = u->easy;
        ok = e != NULL && curl_easy_setopt(e, CURLOPT_URL, u->url) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_HTTPHEADER, w->headers) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)u) == CURLE_OK;
    }
    if (!ok) {
        snprintf(err, err_cap, "webhooks: libcurl refused the settings");
        tl_webhook_close(w);
        return -1;
    }
    *out = w;
    return 0;
}

void tl_webhook_close(tl_webhook *w) {
    if (w == NULL)
        return;
    for (uint32_t i = 0; i < w->url_count; i++) {
        wh_url *u = &w->urls[i];
        if (u->busy)
            curl_multi_remove_handle(w->multi, u->easy);
        if (u->easy != NULL)
            curl_easy_cleanup(u->easy);
    }
    if (w->multi != NULL)
        curl_multi_cleanup(w->multi);
    curl_slist_free_all(w->headers);
    free(w->msgs);
    free(w);
}

static void recount_pending(tl_webhook *w) {
    uint64_t p = 0;
    for (uint32_t i = 0; i < w->url_count; i++) {
        const wh_url *u = &w->urls[i];
        p += w->tail - (u->busy ? u->cur : u->next);
    }
    w->st.pending = p;
}

/* A cursor that fell below the FIFO's head lost those messages. */
static void catch_up(tl_webhook *w, wh_url *u) {
    if (u->busy || u->next >= w->head)
        return;
    w->st.dropped += w->head - u->next;
    u->next = w->head;
    u->attempts = 0;
    u->next_try_ns = 0;
}

void tl_webhook_note_unformatted(tl_webhook *w) {
    w->st.unformatted++;
}

bool tl_webhook_post(tl_webhook *w, const char *body, size_t len) {
    if (len == 0 || len > TL_WEBHOOK_BODY_MAX) {
        w->st.refused++;
        return false;
    }
    if (w->tail - w->head == w->queue) {
        w->head++; /* full: the oldest goes */
        for (uint32_t i = 0; i < w->url_count; i++)
            catch_up(w, &w->urls[i]);
    }
    wh_msg *m = &w->msgs[w->tail % w->queue];
    memcpy(m->body, body, len);
    m->len = (uint32_t)len;
    w->tail++;
    w->st.posted++;
    recount_pending(w);
    return true;
}

static uint64_t backoff_ns(const tl_webhook *w, uint32_t attempts) {
    uint64_t b = w->backoff_min_ns;
    for (uint32_t i = 1; i < attempts && b < w->backoff_max_ns; i++)
        b *= 2;
    return b < w->backoff_max_ns ? b : w->backoff_max_ns;
}

static void start(tl_webhook *w, wh_url *u) {
    const wh_msg *m = &w->msgs[u->next % w->queue];
    memcpy(u->send, m->body, m->len);
    if (curl_easy_setopt(u->easy, CURLOPT_POSTFIELDSIZE, (long)m->len) != CURLE_OK ||
        curl_easy_setopt(u->easy, CURLOPT_POSTFIELDS, u->send) != CURLE_OK ||
        curl_multi_add_handle(w->multi, u->easy) != CURLM_OK) {
        /* An attempt that failed before it left: counted like a failed
         * transfer (and a retry if it was one), and it backs off the same
         * way, so a libcurl that keeps refusing shows in the counters. */
        if (u->attempts > 0)
            w->st.retried++;
        w->st.failed++;
        u->attempts++;
        u->next_try_ns = w->now_ns + backoff_ns(w, u->attempts);
        return;
    }
    if (u->attempts > 0)
        w->st.retried++;
    u->busy = true;
    u->cur = u->next;
}

static void finished(tl_webhook *w, wh_url *u, CURLcode rc) {
    curl_multi_remove_handle(w->multi, u->easy);
    u->busy = false;
    long status = 0;
    (void)curl_easy_getinfo(u->easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        w->st.sent++;
        u->next = u->cur + 1;
        u->attempts = 0;
        u->next_try_ns = 0;
        catch_up(w, u);
        return;
    }
    w->st.failed++;
    bool definitive =
        rc == CURLE_OK && status >= 400 && status < 500 && status != 408 && status != 429;
    if (definitive || u->cur < w->head) {
        /* Refused for good, or no longer in the FIFO: given up. */
        w->st.dropped++;
        u->next = u->cur + 1;
        u->attempts = 0;
        u->next_try_ns = 0;
        catch_up(w, u);
        return;
    }
    u->attempts++;
    u->next_try_ns = w->now_ns + backoff_ns(w, u->attempts);
}

void tl_webhook_pass(tl_webhook *w, uint64_t now_mono_ns) {
    w->now_ns = now_mono_ns;
    int running = 0;
    (void)curl_multi_perform(w->multi, &running);
    int left = 0;
    CURLMsg *m;
    /* Bounded: at most one message per easy handle in flight. */
    while ((m = curl_multi_info_read(w->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        wh_url *u = NULL;
        (void)curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&u);
        TL_ASSERT(u != NULL && u->busy);
        finished(w, u, m->data.result);
    }
    bool started = false;
    for (uint32_t i = 0; i < w->url_count; i++) {
        wh_url *u = &w->urls[i];
        if (u->busy || u->next >= w->tail || now_mono_ns < u->next_try_ns)
            continue;
        start(w, u);
        started |= u->busy;
    }
    if (started)
        (void)curl_multi_perform(w->multi, &running); /* send at once: a local hook answers soon */
    recount_pending(w);
}

void tl_webhook_flush(tl_webhook *w, uint64_t timeout_ms) {
    uint64_t until = mono_ns() + timeout_ms * 1000000ull;
    for (;;) {
        tl_webhook_pass(w, mono_ns());
        if (w->st.pending == 0 || mono_ns() >= until)
            return;
        (void)curl_multi_poll(w->multi, NULL, 0, 10, NULL);
    }
}

const tl_webhook_stats *tl_webhook_stats_of(const tl_webhook *w) {
    return &w->st;
}
