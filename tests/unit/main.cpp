#define BOOST_TEST_MODULE xdpfw unit tests
#include <boost/test/unit_test.hpp>
