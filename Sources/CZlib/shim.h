// zlib for Images (gzip-compressed layers). inflateInit2 is a macro, so a
// tiny inline wrapper gives Swift a function to call.
#include <zlib.h>
static inline int moat_inflate_init(z_stream *s) {
    return inflateInit2(s, 15 + 32); /* gzip or zlib header, detected */
}
/* zlib-format streams (SPDY header blocks, used by the CRI streaming
 * server): deflateInit and inflateInit are macros too. */
static inline int moat_deflate_init_zlib(z_stream *s, int level) {
    return deflateInit(s, level);
}
static inline int moat_inflate_init_zlib(z_stream *s) {
    return inflateInit(s);
}
