// ChaCha20-Poly1305 (RFC 8439) over batches of packets, in place, through the OpenSSL that Node itself
// carries (its symbols are resolved from the node binary; nothing extra is installed). This is WireGuard's
// transport AEAD: 96-bit nonce = 4 zero bytes + the 64-bit little-endian counter, no associated data.
// One context per key, set up once; per packet only the nonce changes. No allocation per packet.
#include <errno.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define TAG 16

typedef struct {
  EVP_CIPHER_CTX *enc, *dec;
} aead_t;

static void aead_release(aead_t *a) {
  // EVP_CIPHER_CTX_free wipes the key schedule it holds
  if (a->enc) EVP_CIPHER_CTX_free(a->enc);
  if (a->dec) EVP_CIPHER_CTX_free(a->dec);
  a->enc = a->dec = NULL;
}

static void aead_finalize(napi_env env, void *data, void *hint) {
  aead_release(data);
  free(data);
}

static aead_t *get_aead(napi_env env, napi_value v) {
  aead_t *a = NULL;
  if (napi_unwrap(env, v, (void **)&a) != napi_ok || !a) {
    throw_code(env, "EINVAL", "not an AEAD key handle", 0);
    return NULL;
  }
  if (!a->enc) {
    napi_throw(env, make_errno_error(env, EBADF, "AEAD key was destroyed"));
    return NULL;
  }
  return a;
}

// aeadKey(key: Uint8Array(32)) -> handle
static napi_value aead_key(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *key;
  size_t klen;
  if (arg_typed(env, argv[0], napi_uint8_array, "key", (void **)&key, &klen)) return NULL;
  if (klen != 32) return throw_code(env, "EINVAL", "key must be 32 bytes", 1);
  aead_t *a = calloc(1, sizeof *a);
  if (!a) return throw_errno(env, ENOMEM, "allocate AEAD key");
  a->enc = EVP_CIPHER_CTX_new();
  a->dec = EVP_CIPHER_CTX_new();
  if (!a->enc || !a->dec || EVP_EncryptInit_ex(a->enc, EVP_chacha20_poly1305(), NULL, key, NULL) != 1 ||
      EVP_DecryptInit_ex(a->dec, EVP_chacha20_poly1305(), NULL, key, NULL) != 1) {
    aead_release(a);
    free(a);
    return throw_code(env, "EFAULT", "OpenSSL could not set up ChaCha20-Poly1305", 0);
  }
  NAPI_CALL(env, napi_create_object(env, &self));
  if (napi_wrap(env, self, a, aead_finalize, NULL, NULL) != napi_ok) {
    aead_release(a);
    free(a);
    return throw_code(env, "EFAULT", "napi_wrap failed", 0);
  }
  return self;
}

static void nonce_of(double counter, uint8_t nonce[12]) {
  uint64_t c = (uint64_t)counter;
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(c >> (8 * i));
}

static int counter_ok(double c) { return c >= 0 && c < 18446744073709551616.0 && c == floor(c); }

// Shared argument checks: buf, offsets, lengths, counters (Float64Array), count.
static int batch_args(napi_env env, napi_value *argv, uint8_t **buf, size_t *blen, uint32_t **offs, uint32_t **lens,
                      double **ctrs, uint32_t *count) {
  size_t olen, llen, clen;
  if (arg_typed(env, argv[0], napi_uint8_array, "buf", (void **)buf, blen) ||
      arg_typed(env, argv[1], napi_uint32_array, "offsets", (void **)offs, &olen) ||
      arg_typed(env, argv[2], napi_uint32_array, "lengths", (void **)lens, &llen) ||
      arg_typed(env, argv[3], napi_float64_array, "counters", (void **)ctrs, &clen) ||
      arg_u32(env, argv[4], "count", count))
    return -1;
  if (*count > olen || *count > llen || *count > clen) {
    throw_code(env, "EINVAL", "count exceeds offsets/lengths/counters", 1);
    return -1;
  }
  return 0;
}

// aeadSeal(h, buf, offsets, lengths, counters, count): encrypts buf[off, off+len) in place and writes the
// 16-byte tag right after it (the caller leaves room).
static napi_value aead_seal(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  aead_t *a = get_aead(env, argv[0]);
  uint8_t *buf;
  size_t blen;
  uint32_t *offs, *lens, count;
  double *ctrs;
  if (!a || batch_args(env, argv + 1, &buf, &blen, &offs, &lens, &ctrs, &count)) return NULL;
  for (uint32_t i = 0; i < count; i++) {
    if ((uint64_t)offs[i] + lens[i] + TAG > blen)
      return throw_code(env, "EINVAL", "packet and its 16-byte tag extend beyond buf", 1);
    if (lens[i] > 0x7fffffff || !counter_ok(ctrs[i]))
      return throw_code(env, "EINVAL", "counter must be an integer 0..2^64-1", 1);
  }
  for (uint32_t i = 0; i < count; i++) {
    uint8_t nonce[12], *p = buf + offs[i];
    int l = 0, l2 = 0;
    nonce_of(ctrs[i], nonce);
    if (EVP_EncryptInit_ex(a->enc, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(a->enc, p, &l, p, (int)lens[i]) != 1 || EVP_EncryptFinal_ex(a->enc, p + l, &l2) != 1 ||
        EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_AEAD_GET_TAG, TAG, p + lens[i]) != 1)
      return throw_code(env, "EFAULT", "OpenSSL ChaCha20-Poly1305 encryption failed", 0);
  }
  return NULL;
}

// aeadOpen(h, buf, offsets, lengths, counters, count, ok) -> authenticated: lengths include the 16-byte tag;
// decrypts in place, sets ok[i] to 1 for each packet whose tag verifies (its plaintext is lengths[i] - 16
// bytes at offsets[i]) and 0 otherwise (drop it: its bytes are garbage).
static napi_value aead_open(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7], out;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  aead_t *a = get_aead(env, argv[0]);
  uint8_t *buf, *ok;
  size_t blen, oklen;
  uint32_t *offs, *lens, count;
  double *ctrs;
  if (!a || batch_args(env, argv + 1, &buf, &blen, &offs, &lens, &ctrs, &count) ||
      arg_typed(env, argv[6], napi_uint8_array, "ok", (void **)&ok, &oklen))
    return NULL;
  if (count > oklen) return throw_code(env, "EINVAL", "count exceeds ok", 1);
  for (uint32_t i = 0; i < count; i++)
    if ((uint64_t)offs[i] + lens[i] > blen) return throw_code(env, "EINVAL", "packet extends beyond buf", 1);
  uint32_t good = 0;
  for (uint32_t i = 0; i < count; i++) {
    ok[i] = 0;
    if (lens[i] < TAG || lens[i] > 0x7fffffff || !counter_ok(ctrs[i])) continue;
    uint8_t nonce[12], *p = buf + offs[i];
    int clen = (int)lens[i] - TAG, l = 0, l2 = 0;
    nonce_of(ctrs[i], nonce);
    if (EVP_DecryptInit_ex(a->dec, NULL, NULL, NULL, nonce) != 1 || EVP_DecryptUpdate(a->dec, p, &l, p, clen) != 1 ||
        EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_AEAD_SET_TAG, TAG, p + clen) != 1)
      continue;
    if (EVP_DecryptFinal_ex(a->dec, p + l, &l2) == 1) {
      ok[i] = 1;
      good++;
    }
  }
  NAPI_CALL(env, napi_create_uint32(env, good, &out));
  return out;
}

static napi_value aead_destroy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  aead_t *a = NULL;
  if (napi_unwrap(env, argv[0], (void **)&a) == napi_ok && a) aead_release(a);
  return NULL;
}

napi_status aead_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"aeadKey", NULL, aead_key, NULL, NULL, NULL, napi_default, NULL},
      {"aeadSeal", NULL, aead_seal, NULL, NULL, NULL, napi_default, NULL},
      {"aeadOpen", NULL, aead_open, NULL, NULL, NULL, napi_default, NULL},
      {"aeadDestroy", NULL, aead_destroy, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
