
/*
 * Copyright (C) ldseg authors
 *
 * CRC-32 of gzip (ISO-HDLC, polynomial 0x04C11DB7, reflected), with the
 * results and the chaining of zlib's crc32(): the CRC of a||b is
 * ldseg_crc32(ldseg_crc32(0, a, alen), b, blen).
 *
 * On x86-64 CPUs with PCLMULQDQ and SSE4.1 (chosen at run time) by
 * carry-less multiplication folding, several times faster than zlib's
 * tables; elsewhere, and for short buffers, zlib's crc32() itself.
 * LDSEG_CRC32_NO_SIMD builds the portable version only.
 */


#ifndef _LDSEG_CRC32_H_INCLUDED_
#define _LDSEG_CRC32_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#if defined(__x86_64__) && defined(__GNUC__) && !defined(LDSEG_CRC32_NO_SIMD)
#define LDSEG_CRC32_CLMUL  1
#endif


/*
 * The CRC of len bytes at p, continued from crc (0 to start).  Reads
 * exactly [p, p + len); len 0 returns crc.  p NULL returns 0, zlib's
 * initial value, as crc32(crc, Z_NULL, len) does.
 */
uint32_t ldseg_crc32(uint32_t crc, const void *p, size_t len);

/* the same, always with zlib's crc32() */
uint32_t ldseg_crc32_portable(uint32_t crc, const void *p, size_t len);

#if (LDSEG_CRC32_CLMUL)

/* non-zero if this CPU runs ldseg_crc32_clmul() */
int ldseg_crc32_clmul_usable(void);

/*
 * The same, folding 16-byte blocks with PCLMULQDQ whatever len is (what
 * is below 64 bytes, and the last len % 16 bytes, go to zlib).  Only when
 * ldseg_crc32_clmul_usable().
 */
uint32_t ldseg_crc32_clmul(uint32_t crc, const void *p, size_t len);

#endif


#endif /* _LDSEG_CRC32_H_INCLUDED_ */
