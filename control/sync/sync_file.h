/*
 * sync_file.h - whole-file reads and crash-safe whole-file writes for the sync library's state
 * (the CA's files, generated nats-server configurations). Any thread; no shared state.
 */
#ifndef SLUICE_SYNC_FILE_H
#define SLUICE_SYNC_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Writes len bytes to path atomically: a temporary file beside it, fsync, rename over path,
 * fsync of the directory. A reader sees the old file or the new one, never a part. mode is the
 * new file's permission bits (0600 for keys). Returns 0 or -errno. */
int sync_file_write(const char *path, const void *data, size_t len, mode_t mode);

/* Reads the whole file (at most max bytes) into a NUL-terminated malloc'd buffer. Returns 0,
 * -EFBIG when it is longer than max, or -errno. *len_r (may be NULL) excludes the NUL. */
int sync_file_read(const char *path, size_t max, char **data_r, size_t *len_r);

#endif
