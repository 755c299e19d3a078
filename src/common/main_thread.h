// SPDX-License-Identifier: MIT
// Handing work from GStreamer threads to the main loop.
//
// Owns: one primitive, `post_to_main()`, that queues a closure on the default main context. The
// closures it runs must check that what they touch still exists (capture weak pointers).
#pragma once

#include <functional>

namespace rtgw {

void post_to_main(std::function<void()> fn);

}  // namespace rtgw
