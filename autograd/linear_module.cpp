#include "autograd/linear_module.h"

#include "autograd/functions.h"
#include "core/random.h"

namespace gradaccum::nn {

Linear::Linear(const LinearOptions& options) : options_(options) {
  GA_CHECK(options.in_features() > 0 && options.out_features() > 0,
           "Linear: in and out features must be > 0, got " << options.in_features() << ", "
                                                           << options.out_features());
  const std::uint64_t seed = options.seed() ? *options.seed() : next_default_seed();
  weight_ = register_parameter(
      "weight", linear_weight_init(options.in_features(), options.out_features(), seed));
  if (options.bias()) {
    bias_ =
        register_parameter("bias", linear_bias_init(options.in_features(), options.out_features(),
                                                    seed ^ 0x9E3779B97F4A7C15ull));
  }
}

Variable Linear::forward(const Variable& x, bool fuse_relu) {
  GA_CHECK(x.defined() && x.value().rank() == 2 && x.shape()[1] == options_.in_features(),
           "Linear(" << options_.in_features() << ", " << options_.out_features()
                     << "): expected input [N, " << options_.in_features() << "], got "
                     << (x.defined() ? x.value().str() : std::string("an undefined Variable")));
  return autograd::linear(x, weight_, bias_, fuse_relu, gemm_config());
}

}  // namespace gradaccum::nn
