// Comparing a fast result with the fp64 oracle by normalised error, and the
// tolerances derived from the dtype's unit roundoff (no hand-tuned numbers).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace kiln::ref {

// Unit roundoff of the arithmetic: 2^-24 for fp32, 2^-8 for bf16 operands.
double unit_roundoff(DType dtype);

// ||got - want||_2 / max(||want||_2, tiny): the error measure every op test uses.
double normalized_error(const std::vector<float>& got, const std::vector<double>& want);
double max_abs_error(const std::vector<float>& got, const std::vector<double>& want);

// Error bound for a result that passed through `depth` roundings of relative size
// unit_roundoff(dtype) (a dot product of length K counts as about sqrt(K) for a
// random-walk accumulation, times a safety factor k): k * depth * u.
double derived_tolerance(DType dtype, double depth, double k = 8.0);

std::vector<double> to_double(const std::vector<float>& v);
std::vector<float> to_float(const std::vector<double>& v);
// Values rounded to bf16 and back (what a bf16 operand really holds).
std::vector<double> round_to_bf16(const std::vector<double>& v);

// Deterministic test data: uniform in [-scale, scale].
std::vector<double> random_vector(int64_t n, uint64_t seed, double scale = 1.0);

}  // namespace kiln::ref
