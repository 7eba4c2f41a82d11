/* SPDX-License-Identifier: ISC */
/*
 * auth_audit.c: the admission audit log (-admission-log FILE): one JSON
 * object a line per decision, see derpd-admission(7).
 *
 * The engine thread formats a line and appends it to a bounded queue
 * (AUDIT_QUEUE_MAX lines; past it the line is dropped and counted); a
 * writer thread of its own writes the queue to the file, so a slow disk
 * never stalls a loop. Lines are limited per (key, verdict): at most one
 * per AUDIT_INTERVAL_MS; the next line written for the pair says how
 * many were suppressed. The reload opens the file again (logrotate):
 * the new descriptor is handed to the writer, which closes the old one
 * between two writes.
 *
 * Threads: q_lock (a leaf) guards the queue, the new descriptor and the
 * stop flag; the limiter is the engine thread's; the counters are atomic.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "auth_int.h"
#include "log.h"
#include "util.h"

#define AUDIT_QUEUE_MAX		4096		/* lines waiting for the disk */
#define AUDIT_INTERVAL_MS	(10 * 1000)	/* per (key, verdict) */
#define AUDIT_SLOTS		4096		/* limiter, direct-mapped */

struct audit_line {
	struct audit_line	*l_next;
	size_t			 l_len;
	char			 l_buf[];
};

struct audit_slot {
	uint8_t		 s_key[32];
	int		 s_used;
	int		 s_allow;
	uint64_t	 s_next_ms;	/* no line before this */
	uint64_t	 s_suppressed;	/* since the last line */
};

struct auth_audit {
	char			 au_path[PATH_MAX];
	int			 au_syslog;	/* "syslog": no file */
	pthread_t		 au_thread;
	int			 au_started;
	pthread_mutex_t		 au_lock;
	pthread_cond_t		 au_cond;
	struct audit_line	*au_head, *au_tail;	/* au_lock */
	size_t			 au_len;		/* au_lock */
	int			 au_newfd;		/* au_lock: -1 none */
	int			 au_stop;		/* au_lock */
	int			 au_fd;			/* the writer's */
	/* the engine thread's */
	struct audit_slot	*au_slots;
	uint8_t			 au_seed[UTIL_HASH_SEED_LEN];
	/* counters (atomic) */
	uint64_t		 au_written, au_suppressed, au_dropped;
	uint64_t		 au_errors;
};

static int
audit_open(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd == -1)
		snprintf(err, errlen, "-admission-log: %s: %s", path,
		    strerror(errno));
	return fd;
}

static void *
audit_writer(void *arg)
{
	struct auth_audit	*au = arg;
	struct audit_line	*list, *l;
	int			 stop, nfd;

	for (;;) {
		pthread_mutex_lock(&au->au_lock);
		while (au->au_head == NULL && au->au_newfd == -1 &&
		    !au->au_stop)
			pthread_cond_wait(&au->au_cond, &au->au_lock);
		list = au->au_head;
		au->au_head = au->au_tail = NULL;
		au->au_len = 0;
		nfd = au->au_newfd;
		au->au_newfd = -1;
		stop = au->au_stop;
		pthread_mutex_unlock(&au->au_lock);
		if (nfd != -1) {
			close(au->au_fd);
			au->au_fd = nfd;
		}
		for (; list != NULL; list = l) {
			l = list->l_next;
			if (au->au_syslog) {
				/* The line without its newline. */
				syslog(LOG_AUTHPRIV | LOG_INFO, "%.*s",
				    (int)list->l_len - 1, list->l_buf);
				__atomic_add_fetch(&au->au_written, 1,
				    __ATOMIC_RELAXED);
			} else if (write(au->au_fd, list->l_buf,
			    list->l_len) == (ssize_t)list->l_len)
				__atomic_add_fetch(&au->au_written, 1,
				    __ATOMIC_RELAXED);
			else
				__atomic_add_fetch(&au->au_errors, 1,
				    __ATOMIC_RELAXED);
			free(list);
		}
		if (stop)
			return NULL;
	}
}

struct auth_audit *
auth_audit_new(const char *path, char *err, size_t errlen)
{
	struct auth_audit *au;

	if ((au = calloc(1, sizeof(*au))) == NULL ||
	    (au->au_slots = calloc(AUDIT_SLOTS, sizeof(*au->au_slots))) ==
	    NULL) {
		if (au != NULL)
			free(au);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(au->au_path, sizeof(au->au_path), "%s", path);
	util_hash_seed(au->au_seed);
	au->au_newfd = -1;
	au->au_fd = -1;
	pthread_mutex_init(&au->au_lock, NULL);
	pthread_cond_init(&au->au_cond, NULL);
	au->au_syslog = strcmp(path, "syslog") == 0;
	if (!au->au_syslog &&
	    (au->au_fd = audit_open(path, err, errlen)) == -1) {
		auth_audit_free(au);
		return NULL;
	}
	if (pthread_create(&au->au_thread, NULL, audit_writer, au) != 0) {
		snprintf(err, errlen, "-admission-log: cannot start its "
		    "writer thread");
		auth_audit_free(au);
		return NULL;
	}
	au->au_started = 1;
	return au;
}

void
auth_audit_free(struct auth_audit *au)
{
	struct audit_line *l, *n;

	if (au == NULL)
		return;
	if (au->au_started) {
		/* What is queued is written first. */
		pthread_mutex_lock(&au->au_lock);
		au->au_stop = 1;
		pthread_cond_signal(&au->au_cond);
		pthread_mutex_unlock(&au->au_lock);
		pthread_join(au->au_thread, NULL);
	}
	for (l = au->au_head; l != NULL; l = n) {
		n = l->l_next;
		free(l);
	}
	if (au->au_newfd != -1)
		close(au->au_newfd);
	if (au->au_fd != -1)
		close(au->au_fd);
	pthread_mutex_destroy(&au->au_lock);
	pthread_cond_destroy(&au->au_cond);
	free(au->au_slots);
	free(au);
}

int
auth_audit_reopen(struct auth_audit *au, char *err, size_t errlen)
{
	int fd, old;

	if (au->au_syslog)
		return 0;
	if ((fd = audit_open(au->au_path, err, errlen)) == -1)
		return -1;
	pthread_mutex_lock(&au->au_lock);
	old = au->au_newfd;
	au->au_newfd = fd;
	pthread_cond_signal(&au->au_cond);
	pthread_mutex_unlock(&au->au_lock);
	if (old != -1)
		close(old);
	return 0;
}

char *
auth_audit_line(const struct auth_audit_rec *r, int64_t now_ms,
    uint64_t suppressed)
{
	cJSON		*o = cJSON_CreateObject(), *ij;
	char		 k[KEY_TEXT_SIZE], t[40], *s, *line;
	time_t		 secs = (time_t)(now_ms / 1000);
	struct tm	 tm;
	size_t		 n;

	if (o == NULL)
		return NULL;
	gmtime_r(&secs, &tm);
	n = strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(t + n, sizeof(t) - n, ".%03dZ", (int)(now_ms % 1000));
	cJSON_AddStringToObject(o, "time", t);
	/* The public node key, as derper logs it; never anything secret. */
	util_key_format(r->ar_key, NODEKEY_PREFIX, k);
	cJSON_AddStringToObject(o, "key", k);
	cJSON_AddStringToObject(o, "src", r->ar_src);
	cJSON_AddStringToObject(o, "verdict", r->ar_reason == AUTH_OK ?
	    "allow" : "deny");
	cJSON_AddStringToObject(o, "reason", auth_reason_name(r->ar_reason));
	cJSON_AddStringToObject(o, "backend", r->ar_backend != NULL ?
	    r->ar_backend : "");
	cJSON_AddStringToObject(o, "rule", r->ar_rule != NULL ? r->ar_rule :
	    "");
	cJSON_AddBoolToObject(o, "cached", r->ar_cached);
	cJSON_AddBoolToObject(o, "reverify", r->ar_fresh);
	if (r->ar_ident != NULL && (ij = auth_ident_json(r->ar_ident)) != NULL)
		cJSON_AddItemToObject(o, "identity", ij);
	cJSON_AddNumberToObject(o, "suppressed", (double)suppressed);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (s == NULL)
		return NULL;
	n = strlen(s);
	if ((line = realloc(s, n + 2)) == NULL) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	return line;
}

void
auth_audit_note(struct auth_audit *au, const struct auth_audit_rec *r)
{
	struct audit_slot	*sl;
	struct audit_line	*l;
	struct timespec		 ts;
	uint64_t		 now = util_now_ms(), supp;
	int			 allow = r->ar_reason == AUTH_OK;
	char			*s;
	size_t			 n;

	sl = &au->au_slots[util_key_hash(au->au_seed, r->ar_key) %
	    AUDIT_SLOTS];
	if (sl->s_used && sl->s_allow == allow &&
	    memcmp(sl->s_key, r->ar_key, 32) == 0) {
		if (now < sl->s_next_ms) {
			sl->s_suppressed++;
			__atomic_add_fetch(&au->au_suppressed, 1,
			    __ATOMIC_RELAXED);
			return;
		}
		supp = sl->s_suppressed;
	} else
		supp = 0;	/* a new pair takes the slot */
	sl->s_used = 1;
	sl->s_allow = allow;
	memcpy(sl->s_key, r->ar_key, 32);
	sl->s_next_ms = now + AUDIT_INTERVAL_MS;
	sl->s_suppressed = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	if ((s = auth_audit_line(r, (int64_t)ts.tv_sec * 1000 +
	    ts.tv_nsec / 1000000, supp)) == NULL)
		goto drop;
	n = strlen(s);
	if ((l = malloc(sizeof(*l) + n)) == NULL) {
		free(s);
		goto drop;
	}
	memcpy(l->l_buf, s, n);
	l->l_len = n;
	l->l_next = NULL;
	free(s);
	pthread_mutex_lock(&au->au_lock);
	if (au->au_len >= AUDIT_QUEUE_MAX) {
		pthread_mutex_unlock(&au->au_lock);
		free(l);
		goto drop;
	}
	if (au->au_tail != NULL)
		au->au_tail->l_next = l;
	else
		au->au_head = l;
	au->au_tail = l;
	if (au->au_len++ == 0)
		pthread_cond_signal(&au->au_cond);
	pthread_mutex_unlock(&au->au_lock);
	return;
drop:
	__atomic_add_fetch(&au->au_dropped, 1, __ATOMIC_RELAXED);
}

void
auth_audit_counts(struct auth_audit *au, uint64_t *written,
    uint64_t *suppressed, uint64_t *dropped, uint64_t *errors)
{
	*written = __atomic_load_n(&au->au_written, __ATOMIC_RELAXED);
	*suppressed = __atomic_load_n(&au->au_suppressed, __ATOMIC_RELAXED);
	*dropped = __atomic_load_n(&au->au_dropped, __ATOMIC_RELAXED);
	*errors = __atomic_load_n(&au->au_errors, __ATOMIC_RELAXED);
}

void
auth_audit_varz(struct auth_audit *au, struct evbuffer *out)
{
	uint64_t w, s, d, e;

	if (au == NULL)
		return;
	auth_audit_counts(au, &w, &s, &d, &e);
	evbuffer_add_printf(out, "# TYPE derpd_admission_log_lines counter\n"
	    "derpd_admission_log_lines{result=\"written\"} %llu\n"
	    "derpd_admission_log_lines{result=\"suppressed\"} %llu\n"
	    "derpd_admission_log_lines{result=\"dropped\"} %llu\n"
	    "derpd_admission_log_lines{result=\"error\"} %llu\n",
	    (unsigned long long)w, (unsigned long long)s,
	    (unsigned long long)d, (unsigned long long)e);
}
