#include "apps/command.hpp"

namespace sdekit {

std::vector<std::unique_ptr<Command>> all_commands() {
  std::vector<std::unique_ptr<Command>> c;
  c.push_back(make_list_command());
  c.push_back(make_sample_command());
  c.push_back(make_encode_command());
  c.push_back(make_moments_command());
  c.push_back(make_converge_command());
  c.push_back(make_fid_table_command());
  c.push_back(make_guidance_table_command());
  c.push_back(make_likelihood_command());
  c.push_back(make_optimize_grid_command());
  c.push_back(make_train_command());
  c.push_back(make_classifier_command());
  c.push_back(make_distill_command());
  c.push_back(make_fd_command());
  c.push_back(make_launch_command());
  return c;
}

}  // namespace sdekit
