/*
 * A PKCS#11 module that stands for a network HSM: it forwards every call to a real module
 * (PKCS11_DELAY_MODULE, default SoftHSM2) and sleeps PKCS11_DELAY_US microseconds in each
 * C_Sign, C_Encrypt and C_Decrypt first — the round trip to an HSM across a network.
 * Sleeping holds the calling thread, exactly as a blocking network call does; calls on
 * other sessions go on meanwhile, as an HSM serves several sessions at once.
 *
 *   cc -shared -fPIC -O2 -o target/pkcs11-delay.so benches/pkcs11-delay/delay.c -ldl
 *
 * Used by interop/hsm-bench.sh only; nothing in estd knows about it.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef unsigned long CK_ULONG, CK_RV, CK_SESSION_HANDLE, CK_OBJECT_HANDLE;
typedef unsigned char CK_BYTE;
typedef struct { CK_BYTE major, minor; } CK_VERSION;
typedef struct CK_FUNCTION_LIST CK_FUNCTION_LIST;
typedef CK_RV (*fn)(void);
/* PKCS#11 2.40: the version, then 68 function pointers in a fixed order */
struct CK_FUNCTION_LIST { CK_VERSION version; fn f[68]; };
#define I_C_ENCRYPT 30
#define I_C_DECRYPT 34
#define I_C_SIGN 43
typedef CK_RV (*CK_C_GetFunctionList)(CK_FUNCTION_LIST **);
typedef CK_RV (*crypt_fn)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG, CK_BYTE *, CK_ULONG *);

static CK_FUNCTION_LIST list;
static crypt_fn real_sign, real_encrypt, real_decrypt;
static long delay_us;

static void pause_(CK_BYTE *out) {
    /* the size query (no output buffer) costs a round trip on a real HSM too, but C_Sign
       with a known length is what estd's hot path sends: delay the call that signs */
    if (out == NULL || delay_us <= 0) return;
    struct timespec ts = { delay_us / 1000000, (delay_us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) != 0) {}
}
static CK_RV sign(CK_SESSION_HANDLE s, CK_BYTE *d, CK_ULONG n, CK_BYTE *o, CK_ULONG *on) {
    pause_(o); return real_sign(s, d, n, o, on);
}
static CK_RV encrypt_(CK_SESSION_HANDLE s, CK_BYTE *d, CK_ULONG n, CK_BYTE *o, CK_ULONG *on) {
    pause_(o); return real_encrypt(s, d, n, o, on);
}
static CK_RV decrypt_(CK_SESSION_HANDLE s, CK_BYTE *d, CK_ULONG n, CK_BYTE *o, CK_ULONG *on) {
    pause_(o); return real_decrypt(s, d, n, o, on);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out) {
    if (real_sign == NULL) {
        const char *path = getenv("PKCS11_DELAY_MODULE");
        const char *us = getenv("PKCS11_DELAY_US");
        void *h = dlopen(path ? path : "/usr/lib/softhsm/libsofthsm2.so", RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) { fprintf(stderr, "pkcs11-delay: %s\n", dlerror()); return 5; /* CKR_GENERAL_ERROR */ }
        CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
        CK_FUNCTION_LIST *real = NULL;
        if (get == NULL || get(&real) != 0 || real == NULL) return 5;
        list = *real;
        delay_us = us ? atol(us) : 0;
        real_sign = (crypt_fn)list.f[I_C_SIGN];
        real_encrypt = (crypt_fn)list.f[I_C_ENCRYPT];
        real_decrypt = (crypt_fn)list.f[I_C_DECRYPT];
        list.f[I_C_SIGN] = (fn)sign;
        list.f[I_C_ENCRYPT] = (fn)encrypt_;
        list.f[I_C_DECRYPT] = (fn)decrypt_;
    }
    *out = &list;
    return 0;
}
