/*
 * shopkeeper: recommendations for One to One marketing. See cli.c.
 */
#include "cli.h"

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
