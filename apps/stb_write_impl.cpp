// stb_image_write's implementation, compiled here where no compiled libstb is installed (a machine
// that has only the header, e.g. one set up by scripts/pack_device_deps.sh).
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
