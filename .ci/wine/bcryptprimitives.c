/*
 * bcryptprimitives.dll for Wine before 9.0 (Debian 12 ships 8.0), which
 * lacks it. Rust's standard library (1.78 and later) imports ProcessPrng
 * from it on Windows 10 and later, where every system has it; ./x cross
 * builds this into its throwaway Wine prefix only, so that yonder.exe
 * starts there. Nothing of it ships with yonder.
 *
 * ProcessPrng is documented at
 * https://learn.microsoft.com/en-us/windows/win32/seccng/processprng
 * (always succeeds, returns TRUE); RtlGenRandom (SystemFunction036 in
 * advapi32) is the generator Wine has.
 */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
