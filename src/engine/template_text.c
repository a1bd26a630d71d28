/* template_text.c - UTF-8 and the per-character Unicode properties that
 * Python's str methods need: whitespace, case, letters, digits, printable.
 *
 * Contract. Pure functions, thread-safe. Decoding never reads past the given
 * length; a byte that does not start a valid UTF-8 sequence decodes as the
 * code point 0xDC00 + byte (Python's surrogateescape), which encodes back
 * to that same byte, so text round-trips unchanged. Case mapping and the
 * character classes are exact for ASCII, Latin-1, Latin Extended-A, Greek,
 * Cyrillic and Armenian, and approximate beyond (chat templates apply them
 * to role names and keywords).
 */
#include <string.h>

#include "template_internal.h"

uint32_t tpl_utf8_next(const char *str, size_t n, size_t *i) {
    const unsigned char *s = (const unsigned char *)str;
    size_t p = *i;
    unsigned c = s[p];
    if (c < 0x80) {
        *i = p + 1;
        return c;
    }
    size_t k;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        goto bad;
    if (n - p < k) goto bad;
    for (size_t j = 1; j < k; j++) {
        if ((s[p + j] & 0xc0) != 0x80) goto bad;
        cp = (cp << 6) | (s[p + j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff) goto bad;
    *i = p + k;
    return cp;
bad:
    *i = p + 1;
    return 0xdc00 + c;
}

size_t tpl_utf8_put(char *dst, uint32_t cp) {
    unsigned char *d = (unsigned char *)dst;
    if (cp < 0x80) {
        d[0] = (unsigned char)cp;
        return 1;
    }
    if (cp >= 0xdc80 && cp <= 0xdcff) { /* an escaped raw byte */
        d[0] = (unsigned char)(cp - 0xdc00);
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (unsigned char)(0xc0 | (cp >> 6));
        d[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (unsigned char)(0xe0 | (cp >> 12));
        d[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (unsigned char)(0xf0 | (cp >> 18));
    d[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t tpl_utf8_count(const char *s, size_t n) {
    size_t count = 0, i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
        } else {
            tpl_utf8_next(s, n, &i);
        }
        count++;
    }
    return count;
}

size_t tpl_utf8_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    while (k-- && i < n) {
        if ((unsigned char)s[i] < 0x80)
            i++;
        else
            tpl_utf8_next(s, n, &i);
    }
    return i;
}

bool tpl_cp_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

size_t tpl_rstrip_ws_len(const char *s, size_t n) {
    size_t end = n;
    while (end > 0) {
        size_t start = end - 1;
        while (start > 0 && ((unsigned char)s[start] & 0xc0) == 0x80 && end - start < 4) start--;
        size_t j = start;
        uint32_t cp = tpl_utf8_next(s, end, &j);
        if (j != end) { /* not one whole character: treat the last byte alone */
            start = end - 1;
            j = start;
            cp = tpl_utf8_next(s, end, &j);
        }
        if (!tpl_cp_isspace(cp)) break;
        end = start;
    }
    return n - end;
}

/* Ranges where upper and lower case alternate: even = upper, odd = lower
 * (or the reverse when `odd_upper`). */
static const struct {
    uint32_t lo, hi;
    bool odd_upper;
} ALT[] = {
    {0x100, 0x12f, false},   {0x132, 0x137, false}, {0x139, 0x148, true},  {0x14a, 0x177, false},
    {0x179, 0x17e, true},    {0x1a0, 0x1a5, false}, {0x1de, 0x1ef, false}, {0x1f8, 0x21f, false},
    {0x222, 0x233, false},   {0x246, 0x24f, false}, {0x3d8, 0x3ef, false}, {0x460, 0x481, false},
    {0x48a, 0x4bf, false},   {0x4c1, 0x4ce, true},  {0x4d0, 0x52f, false}, {0x1e00, 0x1e95, false},
    {0x1ea0, 0x1eff, false},
};

static int alt_case(uint32_t c) { /* 1 upper, 2 lower, 0 none */
    for (size_t i = 0; i < sizeof ALT / sizeof ALT[0]; i++)
        if (c >= ALT[i].lo && c <= ALT[i].hi) return ((c & 1) != 0) == ALT[i].odd_upper ? 1 : 2;
    return 0;
}

uint32_t tpl_cp_lower(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if ((c >= 0xc0 && c <= 0xde && c != 0xd7)) return c + 32;
    if (c == 0x130) return 'i';
    if (c == 0x178) return 0xff;
    int a = alt_case(c);
    if (a == 1) return c + 1;
    if (a) return c;
    if ((c >= 0x391 && c <= 0x3a1) || (c >= 0x3a3 && c <= 0x3ab)) return c + 32;
    if (c == 0x386) return 0x3ac;
    if (c >= 0x388 && c <= 0x38a) return c + 37;
    if (c == 0x38c) return 0x3cc;
    if (c == 0x38e || c == 0x38f) return c + 63;
    if (c >= 0x410 && c <= 0x42f) return c + 32;
    if (c >= 0x400 && c <= 0x40f) return c + 80;
    if (c == 0x4c0) return 0x4cf;
    if (c >= 0x531 && c <= 0x556) return c + 48;
    if (c >= 0x10a0 && c <= 0x10c5) return c + 7264;
    if (c >= 0x1f08 && c <= 0x1f6f && (c & 0xf) >= 8) return c - 8; /* Greek extended, roughly */
    if (c >= 0x2160 && c <= 0x216f) return c + 16;
    if (c >= 0x24b6 && c <= 0x24cf) return c + 26;
    if (c >= 0xff21 && c <= 0xff3a) return c + 32;
    if (c >= 0x10400 && c <= 0x10427) return c + 40;
    return c;
}

uint32_t tpl_cp_upper(uint32_t c) {
    if (c < 0x80) return c >= 'a' && c <= 'z' ? c - 32 : c;
    if ((c >= 0xe0 && c <= 0xfe && c != 0xf7)) return c - 32;
    if (c == 0xff) return 0x178;
    if (c == 0xb5) return 0x39c;
    if (c == 0x131) return 'I';
    if (c == 0x17f) return 'S';
    int a = alt_case(c);
    if (a == 2) return c - 1;
    if (a) return c;
    if ((c >= 0x3b1 && c <= 0x3c1) || (c >= 0x3c3 && c <= 0x3cb)) return c - 32;
    if (c == 0x3c2) return 0x3a3;
    if (c == 0x3ac) return 0x386;
    if (c >= 0x3ad && c <= 0x3af) return c - 37;
    if (c == 0x3cc) return 0x38c;
    if (c == 0x3cd || c == 0x3ce) return c - 63;
    if (c >= 0x430 && c <= 0x44f) return c - 32;
    if (c >= 0x450 && c <= 0x45f) return c - 80;
    if (c == 0x4cf) return 0x4c0;
    if (c >= 0x561 && c <= 0x586) return c - 48;
    if (c >= 0x1f00 && c <= 0x1f67 && (c & 0xf) < 8) return c + 8;
    if (c >= 0x2170 && c <= 0x217f) return c - 16;
    if (c >= 0x24d0 && c <= 0x24e9) return c - 26;
    if (c >= 0xff41 && c <= 0xff5a) return c - 32;
    if (c >= 0x10428 && c <= 0x1044f) return c - 40;
    return c;
}

bool tpl_cp_isupper(uint32_t c) {
    return tpl_cp_lower(c) != c;
}

bool tpl_cp_islower(uint32_t c) {
    return tpl_cp_upper(c) != c || c == 0xdf || c == 0x138 || c == 0x149 || c == 0xaa || c == 0xba;
}

bool tpl_cp_isalpha(uint32_t c) {
    if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
    if (tpl_cp_isupper(c) || tpl_cp_islower(c)) return true;
    return (c >= 0x5d0 && c <= 0x5ea) || (c >= 0x620 && c <= 0x64a) || (c >= 0x671 && c <= 0x6d3) ||
           (c >= 0x904 && c <= 0x939) || (c >= 0xe01 && c <= 0xe30) ||
           (c >= 0x3041 && c <= 0x3096) || (c >= 0x30a1 && c <= 0x30fa) ||
           (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x4e00 && c <= 0x9fff) ||
           (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
           (c >= 0x20000 && c <= 0x2fa1f);
}

bool tpl_cp_isdigit(uint32_t c) {
    return (c >= '0' && c <= '9') || c == 0xb2 || c == 0xb3 || c == 0xb9 ||
           (c >= 0x660 && c <= 0x669) || (c >= 0x6f0 && c <= 0x6f9) || (c >= 0x966 && c <= 0x96f) ||
           (c >= 0x2070 && c <= 0x2079 && c != 0x2071 && c != 0x2072 && c != 0x2073) ||
           (c >= 0x2080 && c <= 0x2089) || (c >= 0xff10 && c <= 0xff19);
}

bool tpl_cp_isprintable(uint32_t c) {
    if (c < 0x20 || (c >= 0x7f && c < 0xa1)) return false;
    if (c == 0xad || c == 0x1680 || (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
        (c >= 0x205f && c <= 0x206f) || c == 0x3000 || c == 0xfeff ||
        (c >= 0xfff9 && c <= 0xfffb) || c == 0xfffe || c == 0xffff || (c >= 0x600 && c <= 0x605) ||
        c == 0x61c || c == 0x6dd || c == 0x70f || c == 0x180e)
        return false;
    if ((c >= 0xd800 && c <= 0xdfff) || (c >= 0xe000 && c <= 0xf8ff) || c >= 0xf0000) return false;
    if (c >= 0xe0000 && c <= 0xe0fff) return false;
    return true;
}
