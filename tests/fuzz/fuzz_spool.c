/*
 * fuzz_spool: libFuzzer target for the spool's replay scan (spool_replay)
 * and the replay's path check (deliver_spool_path_ok): what a damaged or
 * foreign log file can hand the start-up.
 *
 * The input becomes the record area of a DIRTY segment (log.0, after a
 * real header written by spool_reset). With the first byte odd, the
 * harness first makes every record it can walk well-formed (magic, the
 * segment's generation, lengths clipped to the input, crc32), so the
 * fuzzer gets past the checksum to the path list; with it even, the bytes
 * go in as they are. Every record replayed must lie inside what was
 * written, with npaths NUL-terminated paths; every path the check accepts
 * must be relative, without "." or ".." parts, of the form D/L/new/NAME.
 *
 * The record layout is spool.c's (32-byte header: u32 magic, u32 crc,
 * u64 generation, u32 number of paths, u32 meta length, u64 data length;
 * records 8-byte aligned from SPOOL_HDR). The spool lives on /dev/shm, so
 * its fsyncs cost nothing.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "deliver/deliver.h"
#include "deliver/spool.h"

#define SEG_SIZE (1u << 20)
#define REC_MAGIC 0x5253584du
#define REC_HDR 32u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char log0[96];
static size_t cur_len; /* bytes of records written */

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* Make the records that can be walked in buf well-formed for generation gen. */
static void fix_records(uint8_t *buf, size_t len, uint64_t gen)
{
	size_t off = 0;
	while (off + REC_HDR <= len) {
		uint8_t *h = buf + off;
		size_t room = len - off - REC_HDR;
		uint32_t meta = get32(h + 20) % 512u;
		if (meta == 0)
			meta = 1;
		if (meta > room)
			break;
		uint64_t dlen = get64(h + 24) % (room - meta + 1);
		put32(h, REC_MAGIC);
		put64(h + 8, gen);
		put32(h + 16, get32(h + 16) % 4u + 1u);
		put32(h + 20, meta);
		put64(h + 24, dlen);
		h[REC_HDR + meta - 1] = '\0';
		uint32_t crc = (uint32_t)crc32(0L, h + 8, REC_HDR - 8);
		crc = (uint32_t)crc32(crc, h + REC_HDR, (uInt)(meta + dlen));
		put32(h + 4, crc);
		off += (REC_HDR + meta + (size_t)dlen + 7) & ~(size_t)7;
	}
}

static void check_path(const char *p)
{
	if (!deliver_spool_path_ok(p))
		return;
	int slashes = 0;
	for (const char *s = p; *s; s++)
		slashes += *s == '/';
	if (p[0] == '/' || slashes != 3 || strstr(p, "//") || strncmp(p, "../", 3) == 0 ||
	    strncmp(p, "./", 2) == 0 || strstr(p, "/../") || strstr(p, "/./"))
		abort();
	size_t n = strlen(p);
	if ((n >= 3 && strcmp(p + n - 3, "/..") == 0) || (n >= 2 && strcmp(p + n - 2, "/.") == 0))
		abort();
	const char *name = strrchr(p, '/');
	if (name - p < 4 || memcmp(name - 4, "/new", 4) != 0)
		abort();
}

static int on_record(const struct spool_rec *rec, void *arg)
{
	(void)arg;
	if (rec->npaths == 0 || rec->len > cur_len)
		abort();
	for (size_t i = 0; i < rec->npaths; i++)
		check_path(rec->paths[i]);
	if (rec->len > 0) {
		/* touch every byte: ASan catches a view outside the buffer */
		volatile uint8_t x = 0;
		for (size_t i = 0; i < rec->len; i++)
			x ^= (uint8_t)rec->data[i];
		(void)x;
	}
	return 0;
}

static void cleanup(void)
{
	char p[128];
	for (int i = 0; i < 2; i++) {
		snprintf(p, sizeof p, "%s/log.%d", dir, i);
		unlink(p);
	}
	rmdir(dir);
}

static void setup(void)
{
	if (dir[0])
		return;
	snprintf(dir, sizeof dir, "/dev/shm/fuzz_spool.%ld", (long)getpid());
	snprintf(log0, sizeof log0, "%s/log.0", dir);
	atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	setup();
	if (size == 0 || size > SEG_SIZE - SPOOL_HDR)
		return 0;
	struct spool *sp = spool_open(dir, SEG_SIZE, err, sizeof err);
	if (sp == NULL)
		abort();
	if (spool_reset(sp) != 0) /* log.0: a DIRTY header of a new generation */
		abort();
	spool_close(sp);

	int fd = open(log0, O_RDWR);
	uint8_t hdr[16];
	if (fd < 0 || pread(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
		abort();
	uint64_t gen = get64(hdr + 8);
	uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
	if (buf == NULL)
		abort();
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 1)
		fix_records(buf, size - 1, gen);
	if (ftruncate(fd, SPOOL_HDR) != 0 ||
	    pwrite(fd, buf, size - 1, SPOOL_HDR) != (ssize_t)(size - 1))
		abort();
	close(fd);
	cur_len = size - 1;

	sp = spool_open(dir, SEG_SIZE, err, sizeof err);
	if (sp == NULL)
		abort();
	size_t n = 0;
	if (spool_replay(sp, on_record, NULL, &n) != 0)
		abort();
	spool_close(sp);
	free(buf);
	return 0;
}
