/*
 * cli_http.h - sluicectl's requests to the API over HTTPS (libcurl, verifying the control's
 * certificate against --ca or the system's CAs).
 */
#ifndef SLUICE_CONTROL_CLI_HTTP_H
#define SLUICE_CONTROL_CLI_HTTP_H

#include <jansson.h>

#define CLI_HTTP_API_ERROR  1
#define CLI_HTTP_UNREACHABLE 3

struct cli_http {
	const char *url;     /* https://host:port, without /api/v1 */
	const char *token;
	const char *ca;      /* PEM file, or NULL */
	void       *curl;
};

int  cli_http_init(struct cli_http *h);
void cli_http_cleanup(struct cli_http *h);
/* METHOD /api/v1/PATH with the JSON body (or none). 0 and *resp_r (NULL for 204) on 2xx;
 * CLI_HTTP_API_ERROR with the API's error printed to stderr; CLI_HTTP_UNREACHABLE when no
 * answer came (connection, TLS). */
int  cli_http_request(struct cli_http *h, const char *method, const char *path, json_t *body,
		      json_t **resp_r);

#endif
