/* no_entry_plugin.c: a shared object without the plugin entry point. */
int xdpfw_not_a_plugin(void)
{
	return 42;
}
