
/*
 * Copyright (C) ldseg authors
 *
 * A one-shot raw deflate (RFC 1951) encoder for a whole buffer in memory,
 * built for speed on the sender's JSON payloads: greedy LZ77 with one hash
 * probe per position (4-byte matches and up, 32 KB window), the static
 * Huffman codes of BTYPE 01 written straight through a 64-bit bit buffer,
 * and stored blocks for what the static codes would make larger (random
 * bytes), so that the output is never more than ldseg_deflate_bound().
 *
 * The input goes in segments of 65535 bytes, each a static block or, when
 * that would be larger, a stored block; a match may reach back into an
 * earlier segment.  The last block has BFINAL set.
 */


#ifndef _LDSEG_DEFLATE_H_INCLUDED_
#define _LDSEG_DEFLATE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/*
 * The hash table: 2^LDSEG_DEFLATE_HASH_BITS positions.  On ~300 KB of
 * varied events 2^16 is the fastest (fewer probes that miss, more
 * matches) and compresses as well as 2^13-2^15.
 */
#ifndef LDSEG_DEFLATE_HASH_BITS
#define LDSEG_DEFLATE_HASH_BITS  16
#endif

#define LDSEG_DEFLATE_HASH_SIZE  (1 << LDSEG_DEFLATE_HASH_BITS)

/* the input of one block, at most */
#define LDSEG_DEFLATE_SEGMENT    65535


/*
 * The encoder's state, kept by the caller between calls (256 KB of hash
 * table and 2 KB of code tables) and set up once by
 * ldseg_deflate_init().  Positions in the table are numbers that go on
 * growing from one call to the next, 32 KB and more apart, so that what
 * an earlier call left is too far away to match and the table is never
 * cleared between calls; only when the numbers would overflow 32 bits
 * (after about 4 GB of input) is it cleared.
 */
typedef struct {
    uint32_t                      head[LDSEG_DEFLATE_HASH_SIZE];
    uint32_t                      next;         /* the next call's first;
                                                   it only ever grows, or
                                                   the table is cleared */

    uint32_t                      lit[256];     /* code | bits << 16 */
    uint32_t                      len[259];     /* code + extra | bits << 16 */
    uint32_t                      dist[30];     /* code | extra bits << 16 */
    uint32_t                      dist_base[30];
    uint8_t                       dist_code[512];
} ldseg_deflate_t;


/* sets up a state; it needs nothing to be freed */
void ldseg_deflate_init(ldseg_deflate_t *d);

/*
 * The most ldseg_deflate() writes for len bytes of input: len, 6 bytes a
 * segment of 65535 (a stored block's header and its padding, at most), a
 * segment at least, and 8 bytes the bit buffer may write past the end of
 * the stream.  The stream itself is at most 8 bytes shorter than this.
 * 0 if the sum would overflow size_t.
 */
size_t ldseg_deflate_bound(size_t len);

/*
 * Compresses len bytes at in (NULL if len is 0) into out, which has room
 * for ldseg_deflate_bound(len) bytes, as one raw deflate stream, the last
 * block with BFINAL set.  Returns the stream's length.
 */
size_t ldseg_deflate(ldseg_deflate_t *d, const uint8_t *in, size_t len,
    uint8_t *out);


#endif /* _LDSEG_DEFLATE_H_INCLUDED_ */
