#!/usr/bin/env python3
"""Writes a C++ source holding the bytes of a file as berth::dmz_image."""
import sys

data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "w") as out:
    out.write("// Generated from berth-dmz by embed.py. Do not edit.\n")
    out.write("#include <cstddef>\n#include <cstdint>\nnamespace berth {\n")
    out.write("extern const uint8_t dmz_image[] = {\n")
    for i in range(0, len(data), 16):
        out.write("  " + ", ".join(str(b) for b in data[i:i + 16]) + ",\n")
    out.write("};\nextern const size_t dmz_image_size = %d;\n}\n" % len(data))
