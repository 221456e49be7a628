/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmchanneld under a service manager (systemd), without libsystemd: the
 * notification protocol (sd_notify(3): READY=1, STATUS=..., STOPPING=1 as
 * datagrams to $NOTIFY_SOCKET) and socket activation (sd_listen_fds(3):
 * descriptors from 3 on, $LISTEN_PID, $LISTEN_FDS, $LISTEN_FDNAMES).
 */
#ifndef VMC_SERVICE_H
#define VMC_SERVICE_H

/* Sends one notification ("READY=1\nSTATUS=..."); nothing without $NOTIFY_SOCKET. */
void service_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The socket passed by socket activation for the vhost-user frontend: the
 * one named "vhost-user", else the only one passed.  -1 if none (or not for
 * this process); the LISTEN_* variables are unset either way.
 */
int service_activated_fd(void);

#endif /* VMC_SERVICE_H */
