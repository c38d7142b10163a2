#define BOOST_TEST_MODULE xdpfw end - to - end tests
#include <boost/test/unit_test.hpp>
