#include "messages/validate.h"

#include <gtest/gtest.h>

namespace simpleci {
namespace {

TEST(Validate, CommitIds) {
  EXPECT_TRUE(is_commit_id(std::string(40, 'f')));
  EXPECT_TRUE(is_commit_id(std::string(64, '1')));
  EXPECT_FALSE(is_commit_id(std::string(39, 'f')));
  EXPECT_FALSE(is_commit_id(std::string(41, 'f')));
  EXPECT_FALSE(is_commit_id(std::string(40, 'F')));
  EXPECT_FALSE(is_commit_id("../" + std::string(37, 'a')));
  EXPECT_EQ(normalize_commit_id(std::string(40, 'A')), std::string(40, 'a'));
  EXPECT_EQ(normalize_commit_id("HEAD"), "");
}

TEST(Validate, Names) {
  EXPECT_TRUE(is_safe_name("runner-1.host_a"));
  EXPECT_FALSE(is_safe_name(""));
  EXPECT_FALSE(is_safe_name("."));
  EXPECT_FALSE(is_safe_name(".."));
  EXPECT_FALSE(is_safe_name("-rf"));
  EXPECT_FALSE(is_safe_name("a/b"));
  EXPECT_FALSE(is_safe_name(std::string("a\0b", 3)));
  EXPECT_FALSE(is_safe_name(std::string(65, 'a')));
}

TEST(Validate, Branches) {
  EXPECT_TRUE(is_valid_branch(""));
  EXPECT_TRUE(is_valid_branch("main"));
  EXPECT_TRUE(is_valid_branch("feature/x-1"));
  EXPECT_FALSE(is_valid_branch("a..b"));
  EXPECT_FALSE(is_valid_branch("-x"));
  EXPECT_FALSE(is_valid_branch("x.lock"));
  EXPECT_FALSE(is_valid_branch("a b"));
  EXPECT_FALSE(is_valid_branch("a\nb"));
}

}  // namespace
}  // namespace simpleci
