#include "autograd/op_support.h"

namespace gradaccum::autograd::detail {

// All inputs of one op: defined, one device, one dtype.
void check_inputs(const char* op,
                  std::initializer_list<std::pair<const char*, const Variable*>> in) {
  const Variable* first = nullptr;
  const char* first_name = "";
  for (const auto& [name, v] : in) {
    if (v == nullptr) continue;
    GA_CHECK(v->defined(), op << ": input '" << name << "' is an undefined Variable");
    if (first == nullptr) {
      first = v;
      first_name = name;
      continue;
    }
    GA_CHECK(v->device() == first->device(), op << ": inputs on different devices: '" << first_name
                                                << "' is " << first->value().str() << ", '" << name
                                                << "' is " << v->value().str()
                                                << " (move the model and the data to one device)");
    GA_CHECK(v->dtype() == first->dtype(), op << ": inputs of different dtypes: '" << first_name
                                              << "' is " << first->value().str() << ", '" << name
                                              << "' is " << v->value().str()
                                              << " (convert the data to the model's dtype)");
  }
}

// Whether the op records, and on which tape (merging the inputs' tapes when two meet).
std::shared_ptr<Tape> tape_for(const char* op, std::initializer_list<const Variable*> in) {
  bool needs = false;
  for (const Variable* v : in)
    needs = needs || (v != nullptr && v->requires_grad());
  if (!needs || !grad_enabled()) return nullptr;
  std::shared_ptr<Tape> tape;
  for (const Variable* v : in) {
    if (v == nullptr || !v->requires_grad() || v->tape() == nullptr) continue;
    std::shared_ptr<Tape> t = v->tape()->resolve();
    GA_CHECK(!t->freed(), op << ": an input was produced by a graph whose tape backward() "
                                "already freed; run its forward pass again");
    if (!tape) {
      tape = t;
    } else if (t != tape) {
      tape->absorb(*t);
    }
  }
  return tape ? tape : std::make_shared<Tape>();
}

// The result Variable: recorded (non-leaf, requires grad) when `tape` is set.
Variable make_result(Tensor value, const std::shared_ptr<Tape>& tape) {
  auto data = std::make_shared<VarData>();
  data->value = std::move(value);
  data->is_leaf = tape == nullptr;
  data->requires_grad = tape != nullptr;
  return Variable(std::move(data), tape);
}

}  // namespace gradaccum::autograd::detail
