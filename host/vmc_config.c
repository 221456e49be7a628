// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The configuration space: a window onto the channel table (device-spec,
 * "Device configuration layout"), plus the bad entries of --fault.
 */
#include <endian.h>
#include <stddef.h>
#include <string.h>

#include "log.h"
#include "vmc_chan.h"

static void config_build(struct vmc_device *dev, struct vmchannel_config *cfg)
{
	unsigned int total = dev->nchans + vmc_fault_extra_entries(dev->faults);
	const struct vmc_chan *last = dev->nchans ? dev->chans[dev->nchans - 1] : NULL;

	memset(cfg, 0, sizeof(*cfg));
	if (dev->faults & (1u << VMC_FAULT_GENERATION_FLAP))
		dev->generation++;
	cfg->generation = htole32(dev->generation);
	cfg->num_channels = htole16((uint16_t)total);
	if (dev->faults & (1u << VMC_FAULT_COUNT_HUGE))
		cfg->num_channels = htole16(UINT16_MAX);
	cfg->select = htole16(dev->select);
	if (dev->select < dev->nchans) {
		const struct vmc_chan *ch = dev->chans[dev->select];

		cfg->id = htole32(ch->id);
		memcpy(cfg->name, ch->name, sizeof(cfg->name));
	} else if (dev->select < total) {
		vmc_fault_entry(dev->faults, dev->select - dev->nchans, last ? last->id : 0,
				last ? last->name : "", cfg);
	}
}

bool vmc_get_config(void *opaque, uint32_t offset, uint8_t *buf, uint32_t size)
{
	struct vmchannel_config cfg;

	if (offset > sizeof(cfg) || size > sizeof(cfg) - offset) {
		log_warn("GET_CONFIG of %u bytes at %u is outside the configuration", size, offset);
		return false;
	}
	config_build(opaque, &cfg);
	memcpy(buf, (uint8_t *)&cfg + offset, size);
	return true;
}

bool vmc_set_config(void *opaque, uint32_t offset, const uint8_t *buf, uint32_t size)
{
	struct vmc_device *dev = opaque;
	const uint32_t at = offsetof(struct vmchannel_config, select);
	uint16_t select;

	/*
	 * Only "select" is writable; other bytes are ignored, as specified.
	 * QEMU writes back the whole space with the guest's change in it.
	 */
	if (offset > at || size < sizeof(select) || at - offset > size - sizeof(select)) {
		log_debug("ignoring SET_CONFIG of %u bytes at %u", size, offset);
		return true;
	}
	memcpy(&select, buf + (at - offset), sizeof(select));
	dev->select = le16toh(select);
	return true;
}
