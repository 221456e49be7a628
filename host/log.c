// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

enum log_level log_threshold = LOG_WARN;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

int log_level_parse(const char *name)
{
	unsigned int i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (!strcmp(name, level_names[i]))
			return (int)i;
	return -1;
}

/* stderr is the journal's stream (systemd sets JOURNAL_STREAM=dev:ino). */
static bool stderr_is_journal(void)
{
	static int known = -1;
	unsigned long long dev, ino;
	const char *env;
	struct stat st;

	if (known < 0) {
		env = getenv("JOURNAL_STREAM");
		known = env && sscanf(env, "%llu:%llu", &dev, &ino) == 2 &&
			fstat(STDERR_FILENO, &st) == 0 &&
			(unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	}
	return known;
}

static time_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/*
 * Whether a line of the kind @r counts may go out now; *@suppressed: lines
 * dropped before it.  A kind's budget is its own: nothing another kind logs
 * resets it, and its suppressed count is reported when it logs again.
 */
static bool rate_allows(struct log_rate *r, unsigned int *suppressed)
{
	time_t now = now_s();

	*suppressed = 0;
	if (now - r->start >= LOG_INTERVAL_S) {
		*suppressed = r->suppressed;
		r->start = now;
		r->lines = 0;
		r->suppressed = 0;
	}
	if (r->lines == LOG_BURST) {
		r->suppressed++;
		return false;
	}
	r->lines++;
	return true;
}

/* One write per line: whole lines, whatever else writes to stderr. */
static void emit(enum log_level level, const char *text)
{
	/* syslog priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
	static const char priority[] = { '3', '4', '6', '7' };
	char line[1100];
	int n;

	if (stderr_is_journal())
		n = snprintf(line, sizeof(line), "<%c>%s: %s\n", priority[level],
			     level_names[level], text);
	else
		n = snprintf(line, sizeof(line), "vmchanneld: %s: %s\n", level_names[level], text);
	if (n >= (int)sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* Nowhere left to report it. */
	}
}

void log_msg(struct log_rate *rate, enum log_level level, const char *fmt, ...)
{
	unsigned int suppressed;
	char text[1024];
	va_list ap;

	if (level > log_threshold || (level != LOG_DEBUG && !rate_allows(rate, &suppressed)))
		return;
	if (level != LOG_DEBUG && suppressed) {
		snprintf(text, sizeof(text), "%u more messages like the next were suppressed",
			 suppressed);
		emit(level, text);
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	emit(level, text);
}
