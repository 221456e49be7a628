/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Levelled logging to stderr, one write per line, rate limited per message
 * kind; with syslog priority prefixes ("<4>") when stderr is the journal.
 * The service manager decides where it goes.
 */
#ifndef VMC_LOG_H
#define VMC_LOG_H

#include <time.h>

/* LOG_SILENT as the threshold logs nothing (the fuzz targets use it). */
enum log_level { LOG_SILENT = -1, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

/*
 * Each message kind (each call of a log_ macro in the source) logs at most
 * LOG_BURST lines per LOG_INTERVAL_S seconds (debug: all); more are counted
 * and reported as suppressed when the kind logs again.  A guest that repeats
 * one mistake in a loop costs the journal a few lines, not one line each.
 */
#define LOG_BURST 10
#define LOG_INTERVAL_S 10

/* The budget of one message kind: a static of each call site. */
struct log_rate {
	time_t start;
	unsigned int lines, suppressed;
};

/* The level called @name ("error", "warning", "info", "debug"), or -1. */
int log_level_parse(const char *name);

void log_msg(struct log_rate *rate, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_at(level, ...)					\
	do {							\
		static struct log_rate log_rate_;		\
		log_msg(&log_rate_, level, __VA_ARGS__);	\
	} while (0)

#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

#endif /* VMC_LOG_H */
