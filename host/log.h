/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Levelled logging to stderr, one write per line, rate limited per message
 * kind; with syslog priority prefixes ("<4>") when stderr is the journal.
 * The service manager decides where it goes.
 */
#ifndef VMC_LOG_H
#define VMC_LOG_H

/* LOG_SILENT as the threshold logs nothing (the fuzz targets use it). */
enum log_level { LOG_SILENT = -1, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

/* Each message kind logs at most LOG_BURST lines per LOG_INTERVAL_S (debug: all). */
#define LOG_BURST 10
#define LOG_INTERVAL_S 10

/* The level called @name ("error", "warning", "info", "debug"), or -1. */
int log_level_parse(const char *name);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif /* VMC_LOG_H */
