/* SPDX-License-Identifier: ISC */
/* keys.h: the server key, its file, the mesh key and NaCl box helpers. */
#ifndef DERPD_KEYS_H
#define DERPD_KEYS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The server's identity; lives in sodium_malloc'd memory. */
struct server_key {
	uint8_t	 sk_priv[32];
	uint8_t	 sk_pub[32];
};

/* New sodium-guarded key with a fresh clamped private key; NULL on error. */
struct server_key *keys_generate(void);
/* Derive sk_pub from sk_priv. */
void	keys_derive_public(struct server_key *k);
/* Free (and wipe) a key; NULL is a no-op. */
void	keys_free(struct server_key *k);
/*
 * Load the derper key file at path, or create it (0600, atomically)
 * when missing. Refuses a group/world-readable file. On failure returns
 * NULL with a message in err.
 */
struct server_key *keys_load_or_create(const char *path, char *err,
	    size_t errlen);
/* Parse key file JSON text (case-insensitive PrivateKey). 0 or -1. */
int	keys_parse_file(const char *json, size_t len, uint8_t priv[32],
	    char *err, size_t errlen);
/* Read a mesh key file: 64 hex after trimming whitespace. 0 or -1. */
int	keys_load_mesh(const char *path, uint8_t mesh[32], char *err,
	    size_t errlen);
/* Parse mesh key text (trims whitespace). 0 or -1. */
int	keys_parse_mesh(const char *text, uint8_t mesh[32]);
/* Refuse files readable by group or others. 0, or -1 with err. */
int	keys_check_secrecy(const char *path, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
