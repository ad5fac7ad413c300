// prepare's first pass in C: split text on ASCII whitespace and give each token a provisional id
// in order of first occurrence, with the positions where lines break.  The same rule as
// Python's bytes.split() (space, \t, \n, \v, \f, \r) and the same output as
// w2vjax.prepare's Python first pass, which stays the fallback without a compiler
// (tests/test_prepare.py compares the two).  A plain C ABI, loaded with ctypes.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Tokenizer {
  std::string arena;               // the distinct tokens, concatenated in id order
  std::vector<int64_t> offsets{0};  // token id i is arena[offsets[i], offsets[i + 1])
  std::vector<uint64_t> hashes;
  std::vector<uint32_t> slots;     // open addressing: id + 1, 0 empty
  uint64_t mask = 0;

  Tokenizer() { slots.assign(1 << 16, 0); mask = slots.size() - 1; }

  static uint64_t Hash(const uint8_t* p, size_t n) {  // FNV-1a, then a final mix
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    h ^= h >> 33; h *= 0xff51afd7ed558ccdull; h ^= h >> 33;
    return h;
  }

  void Grow() {
    std::vector<uint32_t> bigger(slots.size() * 2, 0);
    uint64_t m = bigger.size() - 1;
    for (uint32_t id = 0; id < hashes.size(); ++id) {
      uint64_t j = hashes[id] & m;
      while (bigger[j]) j = (j + 1) & m;
      bigger[j] = id + 1;
    }
    slots.swap(bigger);
    mask = m;
  }

  uint32_t Id(const uint8_t* p, size_t n) {
    uint64_t h = Hash(p, n);
    for (uint64_t j = h & mask;; j = (j + 1) & mask) {
      uint32_t s = slots[j];
      if (!s) {
        uint32_t id = static_cast<uint32_t>(hashes.size());
        arena.append(reinterpret_cast<const char*>(p), n);
        offsets.push_back(static_cast<int64_t>(arena.size()));
        hashes.push_back(h);
        slots[j] = id + 1;
        if (2 * hashes.size() > slots.size()) Grow();
        return id;
      }
      uint32_t id = s - 1;
      if (hashes[id] == h && static_cast<size_t>(offsets[id + 1] - offsets[id]) == n &&
          std::memcmp(arena.data() + offsets[id], p, n) == 0)
        return id;
    }
  }
};

inline bool Space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

}  // namespace

extern "C" {

void* w2v_tok_new() { return new Tokenizer(); }

void w2v_tok_free(void* t) { delete static_cast<Tokenizer*>(t); }

// Tokens of buf[0, len) -> ids (room for len / 2 + 1); for each '\n', base + the tokens before
// it -> breaks (room for the count of '\n').  Returns the token count; *n_breaks the breaks'.
int64_t w2v_tok_feed(void* t, const uint8_t* buf, int64_t len, uint32_t* ids, int64_t base,
                     int64_t* breaks, int64_t* n_breaks) {
  Tokenizer& tok = *static_cast<Tokenizer*>(t);
  int64_t n = 0, nb = 0, i = 0;
  while (i < len) {
    uint8_t c = buf[i];
    if (Space(c)) {
      if (c == '\n') breaks[nb++] = base + n;
      ++i;
      continue;
    }
    int64_t start = i;
    while (i < len && !Space(buf[i])) ++i;
    ids[n++] = tok.Id(buf + start, static_cast<size_t>(i - start));
  }
  *n_breaks = nb;
  return n;
}

int64_t w2v_tok_size(void* t) { return static_cast<int64_t>(static_cast<Tokenizer*>(t)->hashes.size()); }

int64_t w2v_tok_bytes(void* t) { return static_cast<int64_t>(static_cast<Tokenizer*>(t)->arena.size()); }

// The distinct tokens in id order: their bytes (room for w2v_tok_bytes) and offsets (size + 1).
void w2v_tok_words(void* t, uint8_t* bytes, int64_t* offsets) {
  const Tokenizer& tok = *static_cast<Tokenizer*>(t);
  std::memcpy(bytes, tok.arena.data(), tok.arena.size());
  std::memcpy(offsets, tok.offsets.data(), tok.offsets.size() * sizeof(int64_t));
}

}  // extern "C"
