# Warnings for swarm's own targets only; dependencies' headers come in as system includes.
function(swarm_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                                           -Wold-style-cast -Wcast-align -Woverloaded-virtual)
  if(SWARM_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
