#include "solvers/noise_replay.hpp"

#include <sstream>

#include "solvers/row_noise.hpp"

namespace sdekit {
namespace {
std::string shape_text(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}
}  // namespace

NoiseReplay::NoiseReplay(at::Tensor blocks, std::string source)
    : blocks_(std::move(blocks)), source_(std::move(source)) {
  if (!blocks_.defined() || blocks_.dim() < 2 || blocks_.size(0) < 1)
    throw std::invalid_argument(source_ + ": expected noise blocks [K, n, ...] with K >= 1, got " +
                                (blocks_.defined() ? shape_text(blocks_.sizes()) : "nothing"));
  if (!at::isFloatingType(blocks_.scalar_type()))
    throw std::invalid_argument(source_ + ": noise blocks must be floating point");
  if (!at::isfinite(blocks_).all().item<bool>())
    throw std::invalid_argument(source_ + ": noise blocks hold non-finite values");
  blocks_ = blocks_.cpu().contiguous();
}

std::shared_ptr<NoiseReplay> NoiseReplay::counter() {
  std::shared_ptr<NoiseReplay> r(new NoiseReplay());
  r->counting_ = true;
  r->source_ = "(counting)";
  return r;
}

std::shared_ptr<NoiseReplay> NoiseReplay::rows(uint64_t seed, int64_t first_row) {
  std::shared_ptr<NoiseReplay> r(new NoiseReplay());
  r->keyed_ = true;
  r->seed_ = seed;
  r->first_row_ = first_row;
  r->source_ = "(row-keyed noise)";
  return r;
}

void NoiseReplay::next_into(at::Tensor& out) {
  if (keyed_) {
    ++used_;
    row_normal_into(out, seed_, first_row_, static_cast<uint64_t>(used_));
    return;
  }
  if (counting_) {
    ++used_;
    out.zero_();
    return;
  }
  if (used_ >= blocks_.size(0))
    throw NoiseExhausted(source_ + ": all " + std::to_string(blocks_.size(0)) +
                         " noise blocks are used and the run asks for another");
  const at::Tensor b = blocks_[used_];
  if (b.sizes() != out.sizes())
    throw std::invalid_argument(source_ + ": a noise block is " + shape_text(b.sizes()) +
                                ", the run draws " + shape_text(out.sizes()));
  out.copy_(b);
  ++used_;
}

std::shared_ptr<NoiseReplay> NoiseReplay::rows_slice(int64_t lo, int64_t count) const {
  if (keyed_) return rows(seed_, first_row_ + lo);
  if (counting_) return counter();
  if (lo < 0 || count < 1 || lo + count > blocks_.size(1))
    throw std::invalid_argument(source_ + ": rows [" + std::to_string(lo) + ", " +
                                std::to_string(lo + count) + ") lie outside its " +
                                std::to_string(blocks_.size(1)) + " rows");
  return std::make_shared<NoiseReplay>(blocks_.narrow(1, lo, count), source_);
}

at::Tensor NoiseReplay::next(const at::Tensor& like) {
  at::Tensor out = at::empty_like(like, at::MemoryFormat::Contiguous);
  next_into(out);
  return out;
}

}  // namespace sdekit
