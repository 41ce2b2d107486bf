/*
 * Test-only stand-in for bcryptprimitives.dll under Wine 8, which lacks
 * ProcessPrng; Go's Windows runtime calls it for all its randomness and
 * stops at start without it. It forwards to RtlGenRandom (advapi32's
 * SystemFunction036). Built and copied into a throwaway Wine prefix by
 * cmd/posagent/wine_test.go and scripts/wine/posagent-wine.sh; never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
