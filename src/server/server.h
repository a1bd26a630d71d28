/* server.h - the HTTP front: libmicrohttpd with an internal epoll thread
 * pool, OpenAI routes, SSE streaming with backpressure, API key, CORS,
 * request size and time limits.
 *
 *   hl_server *srv; hl_server_start(&srv, &(hl_server_params){.port = 8080}, router, &e);
 *   ... SIGTERM ... hl_server_quiesce(srv); hl_router_shutdown(router); hl_server_stop(srv);
 *
 * Contract. The server borrows the router (it must outlive the server).
 * Each request acquires its model from the router (a request for a model
 * that is loading waits for that load, parked, without a thread) and
 * releases it when the request ends. HTTP threads parse, render and stream
 * only; generation runs on each model's scheduler worker (sched.h). A client
 * that goes away cancels its job (seen at the next token at the latest).
 * Every error is an OpenAI error object with the right status.
 * hl_server_stop frees everything the server holds; call it once no request
 * is parked (hl_router_shutdown ends every job and wakes its reader).
 */
#ifndef HL_SERVER_H
#define HL_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../router/router.h"
#include "../util/err.h"

typedef struct hl_server_params {
    const char *host;        /* NULL = "127.0.0.1" */
    int port;                /* 0 = any free port (hl_server_port says which) */
    const char *api_key;     /* NULL = no authentication */
    const char *cors_origin; /* NULL = no CORS headers; "*" or an origin */
    size_t max_body;         /* request body limit in bytes (0 = 64 MiB) */
    int timeout_s;           /* idle connection limit in seconds (0 = 300) */
    int n_threads;           /* HTTP threads (0 = 4) */
    int max_connections;     /* 0 = 1024 */
    int max_tokens;          /* largest max_tokens a request may ask (0 = 1 << 20) */
    const char *default_model; /* /health says "loading" while it loads; NULL = none */
} hl_server_params;

typedef struct hl_server hl_server;

int hl_server_start(hl_server **out, const hl_server_params *p, hl_router *router, hl_err *e);
/* The port actually bound (the free port picked when params.port was 0). */
int hl_server_port(const hl_server *s);
/* Stops accepting new connections; requests in flight go on. */
void hl_server_quiesce(hl_server *s);
/* Requests being served right now. */
int hl_server_active(const hl_server *s);
void hl_server_stop(hl_server *s);

#endif
