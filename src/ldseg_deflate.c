
/*
 * Copyright (C) ldseg authors
 *
 * Raw deflate (RFC 1951) of a whole buffer, for speed.  Each position of
 * the input is hashed once (its 4 bytes, multiplied), the table gives the
 * last position with the same hash, and if that is within 32 KB and its 4
 * bytes are the same, the match is extended 8 bytes at a time (the first
 * differing byte by counting the zero bits of the XOR) and emitted at
 * once, greedily; else the byte is a literal.  The positions inside a
 * match are not put into the table: on the sender's payloads, putting in
 * the last one, or all of those of matches shorter than 8 or 16 bytes,
 * made it 10-40% slower and the stream no shorter.  Symbols go out with the
 * static codes of RFC 1951 3.2.6, bit-reversed in tables made once, into
 * a 64-bit buffer that is stored whole after each symbol and advanced by
 * the bytes it completed (so up to 8 bytes past the stream's end get
 * written, which ldseg_deflate_bound() counts).
 *
 * A segment's static block is abandoned as soon as it is longer than a
 * stored block of the same bytes would be, and the stored block written
 * in its place.
 */


#include <string.h>

#include <ldseg_deflate.h>


#define LDSEG_DEFLATE_WINDOW      32768
#define LDSEG_DEFLATE_MIN_MATCH   4
#define LDSEG_DEFLATE_MAX_MATCH   258

/* a stored block's 3 header bits and padding, LEN and NLEN, at most */
#define LDSEG_DEFLATE_STORED_HEADER  5

/* what the 8-byte stores of the bit buffer may write past the stream */
#define LDSEG_DEFLATE_SLACK       8

/*
 * The largest position number a segment may start at: its positions,
 * and the next call's first, then stay below 2^32.
 */
#define LDSEG_DEFLATE_POS_MAX                                                 \
    (UINT32_MAX - 2 * (LDSEG_DEFLATE_SEGMENT + 1) - LDSEG_DEFLATE_WINDOW)

#define ldseg_deflate_hash(w)                                                 \
    (((uint32_t) (w) * 2654435761u) >> (32 - LDSEG_DEFLATE_HASH_BITS))

#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
#define LDSEG_DEFLATE_BIG_ENDIAN  1
#else
#define LDSEG_DEFLATE_BIG_ENDIAN  0
#endif


typedef struct {
    uint8_t                      *out;      /* the first incomplete byte */
    uint64_t                      bits;     /* its bits, n of them */
    unsigned                      n;
} ldseg_deflate_bits_t;


static uint32_t ldseg_deflate_fixed(unsigned sym);
static int ldseg_deflate_block(ldseg_deflate_t *d, const uint8_t *seg,
    size_t len, uint32_t pos, int final, ldseg_deflate_bits_t *bw);
static void ldseg_deflate_stored(const uint8_t *seg, size_t len, int final,
    ldseg_deflate_bits_t *bw);
static inline size_t ldseg_deflate_extend(const uint8_t *p,
    const uint8_t *q, const uint8_t *end);
static inline uint32_t ldseg_deflate_load32(const uint8_t *p);
static inline uint64_t ldseg_deflate_load64(const uint8_t *p);
static inline void ldseg_deflate_store64(uint8_t *p, uint64_t v);


/* RFC 1951 3.2.5: lengths 3-258, codes 257-285, and distances */

static const uint16_t  ldseg_deflate_len_base[29] = {
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
    35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258
};

static const uint8_t  ldseg_deflate_len_extra[29] = {
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
    3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0
};

static const uint16_t  ldseg_deflate_dist_base[30] = {
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
    257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577
};

static const uint8_t  ldseg_deflate_dist_extra[30] = {
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
    7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13
};


void
ldseg_deflate_init(ldseg_deflate_t *d)
{
    unsigned  s, len, end, c, n, e, code, bits, rev, i;

    memset(d->head, 0, sizeof(d->head));

    /* 0 is then more than a window before any position */
    d->next = LDSEG_DEFLATE_WINDOW + 1;

    for (s = 0; s < 256; s++) {
        d->lit[s] = ldseg_deflate_fixed(s);
    }

    /* a length's code and extra bits, as one field of bits */

    d->len[0] = 0;
    d->len[1] = 0;
    d->len[2] = 0;

    for (c = 0; c < 29; c++) {
        e = ldseg_deflate_fixed(257 + c);
        code = e & 0xffff;
        bits = e >> 16;

        end = (c == 28) ? 259 : ldseg_deflate_len_base[c + 1];

        for (len = ldseg_deflate_len_base[c]; len < end; len++) {
            d->len[len] = (code | (len - ldseg_deflate_len_base[c]) << bits)
                          | (bits + ldseg_deflate_len_extra[c]) << 16;
        }
    }

    /* distance codes: 5 bits, reversed */

    for (c = 0; c < 30; c++) {
        rev = 0;

        for (i = 0; i < 5; i++) {
            rev |= ((c >> i) & 1) << (4 - i);
        }

        d->dist[c] = rev | (unsigned) ldseg_deflate_dist_extra[c] << 16;
        d->dist_base[c] = ldseg_deflate_dist_base[c] - 1;

        /* zlib's _dist_code: distance - 1 below 256, then by 128s */

        end = (c == 29) ? LDSEG_DEFLATE_WINDOW
                        : ldseg_deflate_dist_base[c + 1] - 1u;

        for (n = ldseg_deflate_dist_base[c] - 1u; n < end; n++) {
            if (n < 256) {
                d->dist_code[n] = (uint8_t) c;

            } else {
                d->dist_code[256 + (n >> 7)] = (uint8_t) c;
            }
        }
    }

    d->dist_code[256] = 0;
    d->dist_code[257] = 0;
}


size_t
ldseg_deflate_bound(size_t len)
{
    size_t  segments, extra;

    segments = len / LDSEG_DEFLATE_SEGMENT
               + (len % LDSEG_DEFLATE_SEGMENT != 0 || len == 0);

    extra = segments * LDSEG_DEFLATE_STORED_HEADER + LDSEG_DEFLATE_SLACK;

    if (len > (size_t) -1 - extra) {
        return 0;
    }

    return len + extra;
}


size_t
ldseg_deflate(ldseg_deflate_t *d, const uint8_t *in, size_t len,
    uint8_t *out)
{
    int                    final;
    size_t                 n;
    uint32_t               pos;
    const uint8_t         *seg, *end;
    ldseg_deflate_bits_t   bw;

    if (len == 0) {
        /* a final static block with only its end: 3 bits and 7 */
        out[0] = 0x03;
        out[1] = 0x00;
        return 2;
    }

    bw.out = out;
    bw.bits = 0;
    bw.n = 0;

    pos = d->next;
    seg = in;
    end = in + len;

    do {
        n = end - seg;

        if (n > LDSEG_DEFLATE_SEGMENT) {
            n = LDSEG_DEFLATE_SEGMENT;
        }

        final = (n == (size_t) (end - seg));

        if (pos > LDSEG_DEFLATE_POS_MAX) {
            /* the numbers would overflow: start again, forgetting all */
            memset(d->head, 0, sizeof(d->head));
            pos = LDSEG_DEFLATE_WINDOW + 1;
        }

        if (ldseg_deflate_block(d, seg, n, pos, final, &bw) != 0) {
            ldseg_deflate_stored(seg, n, final, &bw);
        }

        seg += n;
        pos += (uint32_t) n;

    } while (seg < end);

    if (bw.n != 0) {
        *bw.out++ = (uint8_t) bw.bits;
    }

    /* what this call left in the table is too far away for the next */
    d->next = pos + LDSEG_DEFLATE_WINDOW + 1;

    return bw.out - out;
}


/*
 * One segment as a static block, starting at position number pos.  It
 * gives up (-1, *bw untouched) when the block gets longer than a stored
 * block would be, which is also the most it writes: up to the stored
 * block's end, and 8 bytes of the bit buffer past that.
 */

static int
ldseg_deflate_block(ldseg_deflate_t *d, const uint8_t *seg, size_t len,
    uint32_t pos, int final, ldseg_deflate_bits_t *bw)
{
    size_t          mlen;
    uint8_t        *o, *limit;
    uint32_t        w, h, cand, cur, dist, e, c;
    uint64_t        bits;
    unsigned        n;
    const uint8_t  *ip, *end, *ilimit, *mend;

    /* where a stored block of the segment would end */
    limit = bw->out + (bw->n + 3 + 7) / 8 + 4 + len;

    o = bw->out;
    bits = bw->bits | (uint64_t) ((unsigned) final | 2) << bw->n;
    n = bw->n + 3;

    ip = seg;
    end = seg + len;
    ilimit = (len >= LDSEG_DEFLATE_MIN_MATCH) ? end - 3 : seg;
    cur = pos;

    while (ip < ilimit) {
        w = ldseg_deflate_load32(ip);
        h = ldseg_deflate_hash(w);

        cand = d->head[h];
        d->head[h] = cur;
        dist = cur - cand;

        if (dist - 1 < LDSEG_DEFLATE_WINDOW
            && ldseg_deflate_load32(ip - dist) == w)
        {
            mend = (end - ip > LDSEG_DEFLATE_MAX_MATCH)
                   ? ip + LDSEG_DEFLATE_MAX_MATCH : end;

            mlen = LDSEG_DEFLATE_MIN_MATCH
                   + ldseg_deflate_extend(ip + LDSEG_DEFLATE_MIN_MATCH,
                                          ip + LDSEG_DEFLATE_MIN_MATCH - dist,
                                          mend);

            e = d->len[mlen];
            bits |= (uint64_t) (e & 0xffff) << n;
            n += e >> 16;

            dist--;
            c = (dist < 256) ? d->dist_code[dist]
                             : d->dist_code[256 + (dist >> 7)];
            e = d->dist[c];
            bits |= (uint64_t) ((e & 0xffff) | (dist - d->dist_base[c]) << 5)
                    << n;
            n += 5 + (e >> 16);

            ip += mlen;
            cur += (uint32_t) mlen;

        } else {
            e = d->lit[*ip];
            bits |= (uint64_t) (e & 0xffff) << n;
            n += e >> 16;

            ip++;
            cur++;
        }

        ldseg_deflate_store64(o, bits);
        o += n >> 3;
        bits >>= n & ~7u;
        n &= 7;

        if (o > limit) {
            return -1;
        }
    }

    while (ip < end) {
        e = d->lit[*ip++];
        bits |= (uint64_t) (e & 0xffff) << n;
        n += e >> 16;

        ldseg_deflate_store64(o, bits);
        o += n >> 3;
        bits >>= n & ~7u;
        n &= 7;

        if (o > limit) {
            return -1;
        }
    }

    /* the end of the block, code 256: 7 zero bits */

    n += 7;

    ldseg_deflate_store64(o, bits);
    o += n >> 3;
    bits >>= n & ~7u;
    n &= 7;

    if (o > limit || (o == limit && n != 0)) {
        return -1;
    }

    bw->out = o;
    bw->bits = bits;
    bw->n = n;

    return 0;
}


static void
ldseg_deflate_stored(const uint8_t *seg, size_t len, int final,
    ldseg_deflate_bits_t *bw)
{
    uint8_t   *o;
    uint64_t   bits;
    unsigned   n;

    /* BFINAL, BTYPE 00, and up to the next byte */

    bits = bw->bits | (uint64_t) final << bw->n;
    n = bw->n + 3;

    o = bw->out;
    *o++ = (uint8_t) bits;

    if (n > 8) {
        *o++ = (uint8_t) (bits >> 8);
    }

    o[0] = (uint8_t) len;
    o[1] = (uint8_t) (len >> 8);
    o[2] = (uint8_t) ~len;
    o[3] = (uint8_t) (~len >> 8);

    memcpy(o + 4, seg, len);

    bw->out = o + 4 + len;
    bw->bits = 0;
    bw->n = 0;
}


/* how many bytes from p and q on are the same, up to end (p's) */

static inline size_t
ldseg_deflate_extend(const uint8_t *p, const uint8_t *q, const uint8_t *end)
{
    uint64_t        x;
    const uint8_t  *s;

    s = p;

    while (end - p >= 8) {
        x = ldseg_deflate_load64(p) ^ ldseg_deflate_load64(q);

        if (x != 0) {
#if (LDSEG_DEFLATE_BIG_ENDIAN)
            return (p - s) + (__builtin_clzll(x) >> 3);
#else
            return (p - s) + (__builtin_ctzll(x) >> 3);
#endif
        }

        p += 8;
        q += 8;
    }

    while (p < end && *p == *q) {
        p++;
        q++;
    }

    return p - s;
}


static inline uint32_t
ldseg_deflate_load32(const uint8_t *p)
{
    uint32_t  v;

    memcpy(&v, p, sizeof(uint32_t));

    return v;
}


static inline uint64_t
ldseg_deflate_load64(const uint8_t *p)
{
    uint64_t  v;

    memcpy(&v, p, sizeof(uint64_t));

    return v;
}


/* the bit buffer, its first bits in the first byte */

static inline void
ldseg_deflate_store64(uint8_t *p, uint64_t v)
{
#if (LDSEG_DEFLATE_BIG_ENDIAN)
    v = __builtin_bswap64(v);
#endif

    memcpy(p, &v, sizeof(uint64_t));
}


/* the static code of a literal/length symbol, bit-reversed | bits << 16 */

static uint32_t
ldseg_deflate_fixed(unsigned sym)
{
    unsigned  code, bits, rev, i;

    if (sym < 144) {
        code = 0x30 + sym;
        bits = 8;

    } else if (sym < 256) {
        code = 0x190 + sym - 144;
        bits = 9;

    } else if (sym < 280) {
        code = sym - 256;
        bits = 7;

    } else {
        code = 0xc0 + sym - 280;
        bits = 8;
    }

    rev = 0;

    for (i = 0; i < bits; i++) {
        rev |= ((code >> i) & 1) << (bits - 1 - i);
    }

    return rev | bits << 16;
}
