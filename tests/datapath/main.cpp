#define BOOST_TEST_MODULE xdpfw datapath tests
#include <boost/test/unit_test.hpp>
