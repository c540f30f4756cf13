/*
 * api_check.h - a domain judged by the data plane's own parser before it is stored: its
 * fragment, after a base [node] and [listen] section, must load with node_config_load_buffer
 * (dataplane/conf/node_config.h), so what the outbox publishes never fails on a node.
 */
#ifndef SLUICE_CONTROL_API_CHECK_H
#define SLUICE_CONTROL_API_CHECK_H

#include <jansson.h>

struct api_error;

/* 0, or -EINVAL with e set (400, the parser's reason, the field it names). */
int api_check_domain(json_t *domain, struct api_error *e);

#endif
