// Start-up benchmark: the smallest useful program, so the time is process creation,
// runtime start-up and instantiation.
#include <stdio.h>
int main(void) {
    puts("hello");
    return 0;
}
