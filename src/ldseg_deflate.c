
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
 * made it 10-40% slower and the stream no shorter.  Symbols go out with
 * codes bit-reversed in tables (a length's code with its extra bits, a
 * distance's code found as zlib does) into a 64-bit buffer that is stored
 * whole after each symbol and advanced by the bytes it completed (so up to
 * 8 bytes past the stream's end get written, which ldseg_deflate_bound()
 * counts), and counted.
 *
 * The codes: the static ones of RFC 1951 3.2.6, or Huffman codes made
 * from the counts (ldseg_deflate_learn()), whose dynamic block header is
 * made with them once and copied at the start of every block.  Measured
 * on the bench's varied events against static codes alone: 20% of the
 * input instead of 25-26%, for 5-10% more time.
 *
 * A segment's block is abandoned as soon as it is longer than a stored
 * block of the same bytes would be, and the stored block written in its
 * place.
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

/* the largest weight of a symbol given to ldseg_deflate_huffman() */
#define LDSEG_DEFLATE_WEIGHT_MAX  1025

/*
 * The bit buffer's whole bytes out at o: all 8 of its bytes are stored,
 * o moves on by the complete ones, and what is left (n < 8 bits) stays
 */
#define ldseg_deflate_flush(o, bits, n)                                       \
    do {                                                                      \
        ldseg_deflate_store64(o, bits);                                       \
        o += (n) >> 3;                                                        \
        bits >>= (n) & ~7u;                                                   \
        n &= 7;                                                               \
    } while (0)

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


static void ldseg_deflate_learn(ldseg_deflate_t *d);
static void ldseg_deflate_weights(const uint32_t *freq, unsigned n,
    uint32_t *w);
static void ldseg_deflate_huffman(const uint32_t *w, unsigned n,
    uint8_t *lens);
static void ldseg_deflate_canonical(const uint8_t *lens, unsigned n,
    uint32_t *codes);
static void ldseg_deflate_codes(ldseg_deflate_t *d,
    ldseg_deflate_codes_t *codes, const uint8_t *lens);
static void ldseg_deflate_header(ldseg_deflate_codes_t *codes,
    const uint8_t *lens);
static void ldseg_deflate_put(ldseg_deflate_codes_t *codes, uint32_t v,
    unsigned bits);
static int ldseg_deflate_block(ldseg_deflate_t *d,
    const ldseg_deflate_codes_t *codes, const uint8_t *seg, size_t len,
    uint32_t pos, int final, ldseg_deflate_bits_t *bw);
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
    uint8_t   lens[288 + 30];
    unsigned  c, n, len, end;

    memset(d, 0, sizeof(ldseg_deflate_t));

    /* 0 is then more than a window before any position */
    d->next = LDSEG_DEFLATE_WINDOW + 1;

    for (c = 0; c < 29; c++) {
        end = (c == 28) ? 259 : ldseg_deflate_len_base[c + 1];

        for (len = ldseg_deflate_len_base[c]; len < end; len++) {
            d->len_sym[len] = (uint8_t) c;
        }
    }

    for (c = 0; c < 30; c++) {
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

    /* the static codes, RFC 1951 3.2.6: canonical codes of these lengths */

    memset(lens, 8, 144);
    memset(lens + 144, 9, 256 - 144);
    memset(lens + 256, 7, 280 - 256);
    memset(lens + 280, 8, 288 - 280);
    memset(lens + 288, 5, 30);

    ldseg_deflate_codes(d, &d->fixed, lens);
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
    int                     final;
    size_t                  n;
    uint32_t                pos;
    const uint8_t          *seg, *end;
    ldseg_deflate_bits_t    bw;
    ldseg_deflate_codes_t  *codes;

    if (len == 0) {
        /* a final static block with only its end: 3 bits and 7 */
        out[0] = 0x03;
        out[1] = 0x00;
        return 2;
    }

    bw.out = out;
    bw.bits = 0;
    bw.n = 0;

    /* new codes, at most once a call */

    if (d->seen >= LDSEG_DEFLATE_LEARN) {
        ldseg_deflate_learn(d);
    }

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

        codes = (d->learned_ok && n >= LDSEG_DEFLATE_DYNAMIC_MIN)
                ? &d->learned : &d->fixed;

        if (ldseg_deflate_block(d, codes, seg, n, pos, final, &bw) != 0) {
            ldseg_deflate_stored(seg, n, final, &bw);
        }

        seg += n;
        pos += (uint32_t) n;

        if (d->seen < LDSEG_DEFLATE_LEARN) {
            d->seen += (uint32_t) n;
        }

    } while (seg < end);

    if (bw.n != 0) {
        *bw.out++ = (uint8_t) bw.bits;
    }

    /* what this call left in the table is too far away for the next */
    d->next = pos + LDSEG_DEFLATE_WINDOW + 1;

    return bw.out - out;
}


/*
 * One segment as a block with the codes given (static or dynamic),
 * starting at position number pos.  It gives up (-1, *bw untouched) when
 * the block gets longer than a stored block would be, which is also the
 * most it writes: up to the stored block's end, and 8 bytes of the bit
 * buffer past that.
 */

static int
ldseg_deflate_block(ldseg_deflate_t *d, const ldseg_deflate_codes_t *codes,
    const uint8_t *seg, size_t len, uint32_t pos, int final,
    ldseg_deflate_bits_t *bw)
{
    size_t          mlen;
    uint8_t        *o, *limit;
    uint32_t        w, h, cand, cur, dist, e, c, x, left;
    uint64_t        bits;
    unsigned        n;
    const uint8_t  *ip, *end, *ilimit, *mend, *hp;

    /* where a stored block of the segment would end */
    limit = bw->out + (bw->n + 3 + 7) / 8 + 4 + len;

    o = bw->out;
    n = bw->n;

    /* BFINAL, BTYPE 01 (static) or 10 (dynamic) and its header */

    bits = bw->bits
           | (uint64_t) ((unsigned) final | (codes->header_bits ? 4 : 2))
             << n;
    n += 3;

    hp = codes->header;

    for (left = codes->header_bits; left != 0; left -= c) {
        c = (left < 32) ? left : 32;

        w = (uint32_t) hp[0] | (uint32_t) hp[1] << 8
            | (uint32_t) hp[2] << 16 | (uint32_t) hp[3] << 24;
        hp += 4;

        bits |= (uint64_t) (w & (uint32_t) (((uint64_t) 1 << c) - 1)) << n;
        n += c;

        ldseg_deflate_flush(o, bits, n);

        if (o > limit) {
            return -1;
        }
    }

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

            e = codes->len[mlen];
            bits |= (uint64_t) (e & 0xffffff) << n;
            n += e >> 24;
            d->lit_freq[257 + d->len_sym[mlen]]++;

            dist--;
            c = (dist < 256) ? d->dist_code[dist]
                             : d->dist_code[256 + (dist >> 7)];
            e = codes->dist[c];
            x = (e >> 16) & 0xff;
            bits |= (uint64_t) ((e & 0xffff) | (dist - d->dist_base[c]) << x)
                    << n;
            n += x + (e >> 24);
            d->dist_freq[c]++;

            ip += mlen;
            cur += (uint32_t) mlen;

        } else {
            e = codes->lit[*ip];
            bits |= (uint64_t) (e & 0xffffff) << n;
            n += e >> 24;
            d->lit_freq[*ip]++;

            ip++;
            cur++;
        }

        ldseg_deflate_flush(o, bits, n);

        if (o > limit) {
            return -1;
        }
    }

    while (ip < end) {
        e = codes->lit[*ip];
        bits |= (uint64_t) (e & 0xffffff) << n;
        n += e >> 24;
        d->lit_freq[*ip++]++;

        ldseg_deflate_flush(o, bits, n);

        if (o > limit) {
            return -1;
        }
    }

    /* the end of the block, code 256 */

    e = codes->lit[256];
    bits |= (uint64_t) (e & 0xffffff) << n;
    n += e >> 24;
    d->lit_freq[256]++;

    ldseg_deflate_flush(o, bits, n);

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


/*
 * Codes from the counts since the last ones, and the counts start again.
 * Each count is scaled to 1-1025 first: every symbol then has a code, and
 * as a Huffman code at least 17 deep needs a total weight of at least
 * the 19th Fibonacci number, 4181, none is longer than 15 bits.
 */

static void
ldseg_deflate_learn(ldseg_deflate_t *d)
{
    uint8_t   lens[288 + 30];
    uint32_t  w[286];

    ldseg_deflate_weights(d->lit_freq, 286, w);
    ldseg_deflate_huffman(w, 286, lens);

    ldseg_deflate_weights(d->dist_freq, 30, w);

    /* the header's lengths: 286, then 30 */

    ldseg_deflate_huffman(w, 30, lens + 286);
    ldseg_deflate_header(&d->learned, lens);

    /* the tables': 288, then 30 */

    memmove(lens + 288, lens + 286, 30);
    lens[286] = 0;
    lens[287] = 0;

    ldseg_deflate_codes(d, &d->learned, lens);

    d->learned_ok = 1;
    d->seen = 0;

    memset(d->lit_freq, 0, sizeof(d->lit_freq));
    memset(d->dist_freq, 0, sizeof(d->dist_freq));
}


/* n counts scaled to 1-1025, in proportion */

static void
ldseg_deflate_weights(const uint32_t *freq, unsigned n, uint32_t *w)
{
    unsigned  i;
    uint64_t  total;

    total = 0;

    for (i = 0; i < n; i++) {
        total += freq[i];
    }

    for (i = 0; i < n; i++) {
        w[i] = 1 + (uint32_t) ((uint64_t) freq[i] * 1024 / (total + 1));
    }
}


/*
 * Huffman code lengths of n symbols (at most 286) of weights w (at most
 * LDSEG_DEFLATE_WEIGHT_MAX; 0: not used, length 0): the used symbols
 * sorted by weight (counting), then merged two at a time from a queue of
 * leaves and a queue of nodes, both in order of weight.
 */

static void
ldseg_deflate_huffman(const uint32_t *w, unsigned n, uint8_t *lens)
{
    uint8_t   depth[2 * 286];
    unsigned  i, m, k, li, ni, x, pick;
    uint16_t  order[286], parent[2 * 286], count[LDSEG_DEFLATE_WEIGHT_MAX + 2];
    uint32_t  weight[2 * 286];

    memset(count, 0, sizeof(count));

    for (i = 0; i < n; i++) {
        lens[i] = 0;
        count[w[i] + 1]++;
    }

    /* count[v]: how many weights below v, for the weights from 1 on */

    count[1] = 0;

    for (i = 2; i < LDSEG_DEFLATE_WEIGHT_MAX + 2; i++) {
        count[i] = (uint16_t) (count[i] + count[i - 1]);
    }

    m = 0;

    for (i = 0; i < n; i++) {
        if (w[i] != 0) {
            order[count[w[i]]++] = (uint16_t) i;
            m++;
        }
    }

    if (m == 0) {
        return;
    }

    if (m == 1) {
        lens[order[0]] = 1;
        return;
    }

    for (i = 0; i < m; i++) {
        weight[i] = w[order[i]];
    }

    li = 0;
    ni = m;

    for (k = m; k < 2 * m - 1; k++) {
        weight[k] = 0;

        for (pick = 0; pick < 2; pick++) {
            if (li < m && (ni >= k || weight[li] <= weight[ni])) {
                x = li++;

            } else {
                x = ni++;
            }

            parent[x] = (uint16_t) k;
            weight[k] += weight[x];
        }
    }

    depth[2 * m - 2] = 0;

    for (k = 2 * m - 2; k-- > 0; /* void */) {
        depth[k] = (uint8_t) (depth[parent[k]] + 1);
    }

    for (i = 0; i < m; i++) {
        lens[order[i]] = depth[i];
    }
}


/* the canonical codes of RFC 1951 3.2.2, bit-reversed */

static void
ldseg_deflate_canonical(const uint8_t *lens, unsigned n, uint32_t *codes)
{
    unsigned  i, b, code, rev;
    uint32_t  count[16], next[16];

    memset(count, 0, sizeof(count));

    for (i = 0; i < n; i++) {
        count[lens[i]]++;
    }

    count[0] = 0;
    code = 0;

    for (b = 1; b < 16; b++) {
        code = (code + count[b - 1]) << 1;
        next[b] = code;
    }

    for (i = 0; i < n; i++) {
        codes[i] = 0;

        if (lens[i] == 0) {
            continue;
        }

        code = next[lens[i]]++;

        /* reversed: halves, quarters, ... swapped, then shifted down */

        rev = ((code >> 1) & 0x5555) | ((code & 0x5555) << 1);
        rev = ((rev >> 2) & 0x3333) | ((rev & 0x3333) << 2);
        rev = ((rev >> 4) & 0x0f0f) | ((rev & 0x0f0f) << 4);
        rev = ((rev >> 8) & 0x00ff) | ((rev & 0x00ff) << 8);
        rev >>= 16 - lens[i];

        codes[i] = rev;
    }
}


/*
 * The tables of the codes of lengths lens: 288 literal/length (the last
 * two not used, but counted in the static codes), then 30 distance.
 */

static void
ldseg_deflate_codes(ldseg_deflate_t *d, ldseg_deflate_codes_t *codes,
    const uint8_t *lens)
{
    unsigned  i, s, bits;
    uint32_t  code[288];

    ldseg_deflate_canonical(lens, 288, code);

    for (i = 0; i < 257; i++) {
        codes->lit[i] = code[i] | (uint32_t) lens[i] << 24;
    }

    codes->len[0] = 0;
    codes->len[1] = 0;
    codes->len[2] = 0;

    for (i = 3; i < 259; i++) {
        s = d->len_sym[i];
        bits = lens[257 + s];

        codes->len[i] = (code[257 + s]
                         | (i - ldseg_deflate_len_base[s]) << bits)
                        | (bits + ldseg_deflate_len_extra[s]) << 24;
    }

    ldseg_deflate_canonical(lens + 288, 30, code);

    for (i = 0; i < 30; i++) {
        codes->dist[i] = code[i] | (uint32_t) lens[288 + i] << 16
                         | (uint32_t) ldseg_deflate_dist_extra[i] << 24;
    }
}


/*
 * A dynamic block's header (RFC 1951 3.2.7) for these lengths: HLIT 286,
 * HDIST 30, the code length code, and the 316 lengths, runs of one
 * length as code 16.
 */

static void
ldseg_deflate_header(ldseg_deflate_codes_t *codes, const uint8_t *lens)
{
    uint8_t   sym[316], extra[316], clens[19];
    unsigned  i, k, r, rem, c, nsym, hclen;
    uint32_t  freq[19], ccode[19], total;

    static const uint8_t  order[19] = {
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15
    };

    nsym = 0;

    for (i = 0; i < 316; i += r) {
        for (r = 1; i + r < 316 && lens[i + r] == lens[i]; r++) {
            /* void */
        }

        sym[nsym] = lens[i];
        extra[nsym++] = 0;

        for (rem = r - 1; rem >= 3; rem -= c) {
            c = (rem > 6) ? 6 : rem;
            sym[nsym] = 16;
            extra[nsym++] = (uint8_t) (c - 3);
        }

        for (k = 0; k < rem; k++) {
            sym[nsym] = lens[i];
            extra[nsym++] = 0;
        }
    }

    /* the code length code: at most 7 bits (total weight below 55) */

    memset(freq, 0, sizeof(freq));

    for (i = 0; i < nsym; i++) {
        freq[sym[i]]++;
    }

    for (i = 0, k = 0; i < 19; i++) {
        k += (freq[i] != 0);
    }

    if (k < 2) {
        /* a code of one symbol would not be complete */
        freq[freq[1] == 0 ? 1 : 2]++;
    }

    total = 0;

    for (i = 0; i < 19; i++) {
        total += freq[i];
    }

    for (i = 0; i < 19; i++) {
        freq[i] = (freq[i] == 0) ? 0 : 1 + freq[i] * 32 / (total + 1);
    }

    ldseg_deflate_huffman(freq, 19, clens);
    ldseg_deflate_canonical(clens, 19, ccode);

    for (hclen = 19; hclen > 4 && clens[order[hclen - 1]] == 0; hclen--) {
        /* void */
    }

    memset(codes->header, 0, sizeof(codes->header));
    codes->header_bits = 0;

    ldseg_deflate_put(codes, 286 - 257, 5);
    ldseg_deflate_put(codes, 30 - 1, 5);
    ldseg_deflate_put(codes, hclen - 4, 4);

    for (i = 0; i < hclen; i++) {
        ldseg_deflate_put(codes, clens[order[i]], 3);
    }

    for (i = 0; i < nsym; i++) {
        ldseg_deflate_put(codes, ccode[sym[i]], clens[sym[i]]);

        if (sym[i] == 16) {
            ldseg_deflate_put(codes, extra[i], 2);
        }
    }
}


static void
ldseg_deflate_put(ldseg_deflate_codes_t *codes, uint32_t v, unsigned bits)
{
    uint8_t   *p;
    uint32_t   x;

    /* bits is at most 7 here, so that x has at most 14 bits */

    p = codes->header + (codes->header_bits >> 3);
    x = v << (codes->header_bits & 7);

    p[0] |= (uint8_t) x;
    p[1] |= (uint8_t) (x >> 8);

    codes->header_bits += bits;
}
