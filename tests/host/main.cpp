#define BOOST_TEST_MODULE xdpfw host tests
#include <boost/test/unit_test.hpp>
