// zlib for Images (gzip-compressed layers). inflateInit2 is a macro, so a
// tiny inline wrapper gives Swift a function to call.
#include <zlib.h>
static inline int moat_inflate_init(z_stream *s) {
    return inflateInit2(s, 15 + 32); /* gzip or zlib header, detected */
}
