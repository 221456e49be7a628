# SPDX-License-Identifier: GPL-2.0-or-later
# Everything of vmchanneld but main(), for host/Makefile and the fuzz targets.
LIB_SRCS := log.c event_loop.c guest_mem.c virtqueue.c vhost_user.c vu_dev.c \
	    endpoint.c chan_state.c vmc_chan.c vmc_chan_rx.c \
	    vmc_chan_host.c vmc_config.c vmc_device.c \
	    control.c config_file.c chan_stats.c upgrade_state.c
# The test build's hostile device (vmchanneld-test, -DVMC_FAULT_INJECTION).
FAULT_SRCS := fault_injection.c
