
/*
 * Copyright (C) ldseg authors
 *
 * A one-shot raw deflate (RFC 1951) encoder for a whole buffer in memory,
 * built for speed on the sender's JSON payloads: greedy LZ77 with one hash
 * probe per position (4-byte matches and up, 32 KB window), Huffman codes
 * written straight through a 64-bit bit buffer (no buffer of symbols, no
 * second pass), and stored blocks for what the codes would make larger
 * (random bytes), so that the output is never more than
 * ldseg_deflate_bound().
 *
 * The codes are the static ones of BTYPE 01 until the state has seen
 * LDSEG_DEFLATE_LEARN bytes; from then on, dynamic ones (BTYPE 10) made
 * from the counts of the symbols it wrote for those bytes, made again
 * every LDSEG_DEFLATE_LEARN bytes, at most once a call.  The sender's
 * payloads, one much like the next, compress with the codes of the last
 * ones about as well as zlib's level 1 does with codes of their own.
 *
 * The input goes in segments of 65535 bytes, each a block or, when that
 * would be larger, a stored block; a match may reach back into an earlier
 * segment.  The last block has BFINAL set.
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
 * Codes are made from the counts of this much input.  Making them costs
 * about as much as compressing 10-20 KB of events; 32 KB, 128 KB and
 * 256 KB compress the bench's payloads equally well.
 */
#ifndef LDSEG_DEFLATE_LEARN
#define LDSEG_DEFLATE_LEARN      (256 * 1024)
#endif

/* shorter blocks take static codes */
#ifndef LDSEG_DEFLATE_DYNAMIC_MIN
#define LDSEG_DEFLATE_DYNAMIC_MIN  1024
#endif


/* the dynamic block header, after BFINAL and BTYPE, at most (in bytes) */
#define LDSEG_DEFLATE_HEADER_MAX  320


/*
 * A set of codes: the static ones, or those learned from what went
 * before.  lit and len: code | bits << 24; a length's extra bits follow
 * its code in the same field.  dist: code | bits << 16 | extra bits << 24.
 */
typedef struct {
    uint32_t                      lit[257];     /* and the end of block */
    uint32_t                      len[259];
    uint32_t                      dist[30];
    uint32_t                      header_bits;  /* 0: static codes */
    uint8_t                       header[LDSEG_DEFLATE_HEADER_MAX];
} ldseg_deflate_codes_t;


/*
 * The encoder's state, kept by the caller between calls (256 KB of hash
 * table and about 6 KB of codes and counts) and set up once by
 * ldseg_deflate_init().  Positions in the table are numbers that go on
 * growing from one call to the next, 32 KB and more apart, so that what
 * an earlier call left is too far away to match and the table is never
 * cleared between calls; only when the numbers would overflow 32 bits
 * (after about 4 GB of input) is it cleared.
 *
 * The symbols written are counted, and when LDSEG_DEFLATE_LEARN bytes of
 * input have gone by, the next call makes Huffman codes from the counts
 * and the counts start again: the blocks after that, of
 * LDSEG_DEFLATE_DYNAMIC_MIN bytes and more, are dynamic blocks with those
 * codes.  Every literal/length and distance symbol has a code, 15 bits at
 * most, so any bytes can be written with them.
 */
typedef struct {
    uint32_t                      head[LDSEG_DEFLATE_HASH_SIZE];
    uint32_t                      next;         /* the next call's first;
                                                   it only ever grows, or
                                                   the table is cleared */
    uint32_t                      seen;         /* bytes since codes made */
    uint32_t                      lit_freq[286];
    uint32_t                      dist_freq[30];
    ldseg_deflate_codes_t         fixed;
    ldseg_deflate_codes_t         learned;
    int                           learned_ok;

    uint32_t                      dist_base[30];
    uint8_t                       len_sym[259];
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
