#pragma once
// The guidance trade-off table on Fashion-MNIST: classifier guidance of the unconditional model
// (the U-Net's null label) at scales s, against classifier-free guidance of the conditional
// model at weights w, at one sampler and step count. Resumable row by row (ResultsStore).
//
// Protocol, stated with every result: every row draws n samples from the same x_T (seed) with
// balanced classes (sample i has class i mod 10) in batches of 500; the metrics use the feature
// classifier (data/fmnist/classifier.pt, networks/classifier.hpp), not the guiding one:
//   - fd_class: for each class c, the Frechet distance of its samples' features to those of the
//     test images of class c, averaged over the 10 classes;
//   - fd_all: the Frechet distance of all n samples to the 10000 test images;
//   - accuracy: the fraction of samples the feature classifier assigns to their class.
// Floors (what exact samples score at this n): n / 10 random test images of each class against
// the other images of that class, and n random test images against the other 10000 - n.
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "experiments/spec_schema.hpp"
#include "experiments/study.hpp"

namespace sdekit {

struct GuidanceTableSpec {
  std::string model = "fmnist";
  std::string sde = "vp-linear";
  std::string sampler = "dpmpp-2m";
  int steps = 10;
  int64_t n = 2000;
  uint64_t seed = 0;
  std::string grid;  // empty: the schedule's default
  std::string classifier = "fmnist-noisy";
  std::vector<double> scales = {0, 0.5, 1, 2, 4, 8};  // classifier guidance s
  std::vector<double> weights = {0, 0.5, 1, 2, 4};    // classifier-free guidance w
};

/// Throws std::invalid_argument naming the field: an unknown model, SDE, sampler, grid or
/// classifier, a model that is not class-conditional with 10 classes of 1x28x28 images, an
/// adaptive sampler, steps < 1, n < 20 or not a multiple of 10, a non-finite scale or weight, or
/// a duplicate in a list.
void validate(const GuidanceTableSpec& spec);
const SpecSchema<GuidanceTableSpec>& guidance_spec_schema();
std::string guidance_spec_json(const GuidanceTableSpec& spec);
GuidanceTableSpec guidance_spec_from_json(const std::string& text, const std::string& source);

struct GuidanceRow {
  std::string kind;  // "classifier" (s) or "cfg" (w)
  double value = 0.0;
  int64_t nfe = 0;               // network evaluations per sample batch (2 per step for w != 0)
  int64_t classifier_calls = 0;  // classifier gradients per sample batch
  double fd_class = std::numeric_limits<double>::quiet_NaN();
  double fd_all = std::numeric_limits<double>::quiet_NaN();
  double accuracy = std::numeric_limits<double>::quiet_NaN();
  double seconds = 0.0, classifier_seconds = 0.0;
  bool resumed = false;
  std::string key() const;  // "classifier/s=2", "cfg/w=0.5"
};

struct GuidanceTableReport {
  GuidanceTableSpec spec;
  std::string grid;
  double t_end = 0.0;
  double floor_fd_class = std::numeric_limits<double>::quiet_NaN();
  double floor_fd_all = std::numeric_limits<double>::quiet_NaN();
  std::vector<GuidanceRow> rows;
  std::size_t resumed = 0, computed = 0;
};

GuidanceTableReport run_guidance_table(const GuidanceTableSpec& spec, const std::string& out_dir,
                                       bool fresh, const StudyProgressFn& progress = {});

std::string guidance_protocol(const GuidanceTableReport& report);
std::string guidance_markdown(const GuidanceTableReport& report);
std::string guidance_report_json(const GuidanceTableReport& report);
/// results.csv and results.md in out_dir.
void write_guidance_tables(const GuidanceTableReport& report, const std::string& out_dir);

}  // namespace sdekit
