// An error that every rank of a group raises together, at the same collective call: a check made
// on data every rank holds alike after an exchange (ranks disagree on the configuration, no rank
// holds a sample, ...). No rank is left waiting, so every rank can stop normally, and one report
// (rank 0's) says it all. Any other error on one rank must end the group (ProcessGroup::abort).
#pragma once

#include <sstream>
#include <string>

#include "core/error.h"

namespace gradaccum::dist {

class GroupError : public Error {
 public:
  using Error::Error;
};

}  // namespace gradaccum::dist

// GA_GROUP_CHECK(cond, msg): as GA_CHECK, throwing dist::GroupError. Only where cond has the
// same value on every rank.
#define GA_GROUP_CHECK(cond, msg)                                                           \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::ostringstream ga_check_os_;                                                      \
      ga_check_os_ << msg;                                                                  \
      throw ::gradaccum::dist::GroupError(                                                  \
          ::gradaccum::detail::format_error(__FILE__, __LINE__, #cond, ga_check_os_.str()), \
          __FILE__, __LINE__);                                                              \
    }                                                                                       \
  } while (0)
