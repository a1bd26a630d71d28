/* version.h - heylookllm's version, for `--version` and /v1/capabilities. */
#ifndef HL_VERSION_H
#define HL_VERSION_H

#define HL_VERSION "0.2.0"

#endif
