#include "test.h"
#include "scsi_test.h"
int main(void){return test_exit();}
