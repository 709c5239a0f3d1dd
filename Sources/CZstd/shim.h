// libzstd (libzstd-dev) for Images: zstd-compressed layers.
#include <zstd.h>
